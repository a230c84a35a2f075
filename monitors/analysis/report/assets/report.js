/* bcfwatch report: draws every chart from the embedded data (SVG, no network) and makes the board table
   sortable, filterable and searchable. No third-party code. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var COLOUR = {common_cause: "#7F7F7F", special_cause_concern: "#ED8B00", special_cause_improvement: "#005EB8",
                special_cause_neutral_high: "#490092", special_cause_neutral_low: "#490092"};
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var W = 420, H = 180, M = {l: 52, r: 12, t: 10, b: 24};

  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c];
    });
  }
  var EPOCH = Date.parse(DATA.epoch + "T00:00:00Z");
  function day(n) { return EPOCH + n * 864e5; }  /* days are numbers from DATA.epoch */
  function fmt(v, step) {  /* as many decimals as the tick step needs */
    var a = Math.abs(v);
    if (a >= 1000) { return Math.round(v).toLocaleString("en-GB"); }
    var decimals = step ? Math.max(0, Math.min(3, -Math.floor(Math.log10(step) + 1e-9))) : (a >= 10 ? 0 : 1);
    return v.toFixed(decimals);
  }
  function linear(d0, d1, r0, r1) {
    var k = (r1 - r0) / ((d1 - d0) || 1);
    return function (v) { return (r0 + (v - d0) * k).toFixed(1); };
  }
  function ticks(lo, hi, count) {
    var span = hi - lo || 1, raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (f) { return f * mag; }).find(function (s) { return s >= raw; });
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { out.push(+t.toFixed(10)); }
    return out;
  }
  function extent(lists) {
    var lo = Infinity, hi = -Infinity;
    lists.forEach(function (list) {
      list.forEach(function (v) { if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    });
    if (!isFinite(lo)) { return [0, 1]; }
    var pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }
  function line(xs, ys, x, y) {
    var d = "", pen = false;
    for (var i = 0; i < xs.length; i++) {
      if (ys[i] === null || !isFinite(ys[i])) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(xs[i]) + " " + y(ys[i]);
      pen = true;
    }
    return d;
  }
  function axes(x0, x1, y0, y1, x, y, unit) {
    var parts = [];
    var yTicks = ticks(y0, y1, 4), yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 0;
    yTicks.forEach(function (t) {
      parts.push('<line x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + y(t) + '" y2="' + y(t) +
                 '" stroke="#e8edee"/><text x="' + (M.l - 4) + '" y="' + y(t) +
                 '" font-size="10" text-anchor="end" dominant-baseline="middle">' + fmt(t, yStep) + "</text>");
    });
    var first = new Date(x0), month = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 1));
    var spanMonths = (x1 - x0) / (30.44 * 864e5), every = spanMonths > 15 ? 3 : spanMonths > 6 ? 2 : 1;
    for (; month.getTime() <= x1; month = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + every, 1))) {
      var at = x(month.getTime());
      parts.push('<line x1="' + at + '" x2="' + at + '" y1="' + (H - M.b) + '" y2="' + (H - M.b + 3) +
                 '" stroke="#425563"/><text x="' + at + '" y="' + (H - 6) + '" font-size="10" text-anchor="middle">' +
                 MONTHS[month.getUTCMonth()] + " " + String(month.getUTCFullYear()).slice(2) + "</text>");
    }
    parts.push('<line x1="' + M.l + '" x2="' + M.l + '" y1="' + M.t + '" y2="' + (H - M.b) + '" stroke="#425563"/>');
    parts.push('<line x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + (H - M.b) + '" y2="' + (H - M.b) +
               '" stroke="#425563"/>');
    parts.push('<text x="4" y="' + (M.t - 1) + '" font-size="9" fill="#425563" dominant-baseline="hanging" ' +
               'transform="rotate(-90 4 ' + (M.t - 1) + ')" text-anchor="end">' + esc(unit) + "</text>");
    return parts.join("");
  }
  function marker(type, px, py) {
    var c = COLOUR[type] || COLOUR.common_cause, x = +px, y = +py;
    if (type === "special_cause_concern") {  /* a triangle: concern */
      return '<path d="M' + x + " " + (y - 4.5) + "L" + (x + 4) + " " + (y + 3) + "L" + (x - 4) + " " + (y + 3) +
             'Z" fill="' + c + '"/>';
    }
    if (type === "special_cause_improvement") {  /* a square: improvement */
      return '<rect x="' + (x - 3.2) + '" y="' + (y - 3.2) + '" width="6.4" height="6.4" fill="' + c + '"/>';
    }
    if (type.indexOf("neutral") >= 0) {  /* a diamond: neutral */
      return '<path d="M' + x + " " + (y - 4) + "L" + (x + 4) + " " + y + "L" + x + " " + (y + 4) + "L" + (x - 4) +
             " " + y + 'Z" fill="' + c + '"/>';
    }
    return '<circle cx="' + x + '" cy="' + y + '" r="2" fill="' + c + '"/>';
  }
  function svg(label, body) {
    return '<svg viewBox="0 0 ' + W + " " + H + '" role="img" aria-label="' + esc(label) + '">' + body + "</svg>";
  }

  function spcChart(s, label) {
    var xs = s.periods.map(day), target = s.target === null ? [] : [s.target];
    var yr = extent([s.values, s.lower, s.upper, target]);
    var x = linear(xs[0], xs[xs.length - 1], M.l + 6, W - M.r - 6), y = linear(yr[0], yr[1], H - M.b, M.t);
    var body = axes(xs[0], xs[xs.length - 1], yr[0], yr[1], x, y, s.unit);
    if (s.target !== null) {
      body += '<path d="M' + M.l + " " + y(s.target) + "H" + (W - M.r) +
              '" stroke="#DA291C" stroke-width="1.2" stroke-dasharray="6 3 1 3"/>';
    }
    body += '<path d="' + line(xs, s.upper, x, y) + line(xs, s.lower, x, y) +
            '" stroke="#231f20" stroke-width="0.8" stroke-dasharray="4 3" fill="none"/>';
    body += '<path d="' + line(xs, s.mean, x, y) + '" stroke="#231f20" stroke-width="1" fill="none"/>';
    body += '<path d="' + line(xs, s.values, x, y) + '" stroke="#7F7F7F" stroke-width="1" fill="none"/>';
    for (var i = 0; i < xs.length; i++) { body += marker(DATA.point_types[s.types[i]], x(xs[i]), y(s.values[i])); }
    return svg(label, body);
  }

  function cumulativeChart(c, label) {
    var planX = c.plan_days.map(day), actX = c.days.map(day), end = day(c.year_end);
    var yr = extent([c.plan, c.actual, [c.low, c.high, 0]]);
    var x = linear(planX[0], end, M.l + 4, W - M.r - 4), y = linear(yr[0], yr[1], H - M.b, M.t);
    var body = axes(planX[0], end, yr[0], yr[1], x, y, c.unit);
    if (actX.length) {
      var lx = x(actX[actX.length - 1]), ly = y(c.actual[c.actual.length - 1]);
      body += '<path d="M' + lx + " " + ly + "L" + x(end) + " " + y(c.high) + "L" + x(end) + " " + y(c.low) +
              'Z" fill="#ED8B00" fill-opacity="0.22" stroke="none"/>';
      body += '<path d="M' + lx + " " + ly + "L" + x(end) + " " + y(c.projected) +
              '" stroke="#ED8B00" stroke-width="1.2" stroke-dasharray="2 2" fill="none"/>';
    }
    body += '<path d="' + line(planX, c.plan, x, y) + '" stroke="#DA291C" stroke-width="1.2" ' +
            'stroke-dasharray="6 3" fill="none"/>';
    body += '<path d="' + line(actX, c.actual, x, y) + '" stroke="#003087" stroke-width="1.8" fill="none"/>';
    body += '<path d="M' + (x(end) - 5) + " " + y(c.planned_year_end) + "h10" +
            '" stroke="#DA291C" stroke-width="2"/>';
    return svg(label, body);
  }

  function funnel(f) {
    var el = document.querySelector("#funnel .plot");
    if (!el || !f.points.length) { return; }
    var w = 760, h = 360, m = {l: 56, r: 14, t: 12, b: 40};
    var sizes = f.points.map(function (p) { return p.planned; }).concat(f.size);
    var lo = Math.log10(Math.max(1, Math.min.apply(null, sizes))), hi = Math.log10(Math.max.apply(null, sizes));
    var yr = extent([f.points.map(function (p) { return p.variance; }),
                     f.sd.map(function (s) { return s * f.threshold; }), f.sd.map(function (s) { return -s * f.threshold; })]);
    var x = function (v) { return (m.l + (Math.log10(Math.max(v, 1)) - lo) / ((hi - lo) || 1) * (w - m.l - m.r)).toFixed(1); };
    var y = function (v) { return (h - m.b - (v - yr[0]) / (yr[1] - yr[0]) * (h - m.t - m.b)).toFixed(1); };
    var body = "";
    var fTicks = ticks(yr[0], yr[1], 6), fStep = fTicks.length > 1 ? fTicks[1] - fTicks[0] : 0;
    fTicks.forEach(function (t) {
      body += '<line x1="' + m.l + '" x2="' + (w - m.r) + '" y1="' + y(t) + '" y2="' + y(t) + '" stroke="#e8edee"/>' +
              '<text x="' + (m.l - 4) + '" y="' + y(t) + '" font-size="11" text-anchor="end" dominant-baseline="middle">' +
              fmt(t, fStep) + "%</text>";
    });
    for (var p = Math.ceil(lo); p <= hi; p++) {
      body += '<text x="' + x(Math.pow(10, p)) + '" y="' + (h - m.b + 14) + '" font-size="11" text-anchor="middle">' +
              fmt(Math.pow(10, p)) + "</text>";
    }
    body += '<text x="' + ((w + m.l) / 2) + '" y="' + (h - 6) + '" font-size="11" text-anchor="middle">' +
            "planned emergency admissions, year to date (log scale)</text>";
    [[1.96, "2 2"], [f.threshold, "6 3"]].forEach(function (pair) {
      var up = f.sd.map(function (s) { return s * pair[0]; }), down = f.sd.map(function (s) { return -s * pair[0]; });
      body += '<path d="' + line(f.size, up, x, y) + line(f.size, down, x, y) + '" stroke="#231f20" fill="none" ' +
              'stroke-width="0.9" stroke-dasharray="' + pair[1] + '"/>';
    });
    body += '<path d="M' + m.l + " " + y(0) + "H" + (w - m.r) + '" stroke="#DA291C"/>';
    f.points.forEach(function (pt) {
      var type = pt.alerted ? "special_cause_concern" : "common_cause";
      body += '<a href="#' + pt.code + '"><title>' + esc(pt.code + " " + pt.name + ": " + pt.variance.toFixed(1) +
              "% vs plan" + (pt.alerted ? ", alerted" : "")) + "</title>" +
              marker(type, x(pt.planned), y(pt.variance)).replace('r="2"', 'r="3.5"') + "</a>";
    });
    el.innerHTML = '<svg viewBox="0 0 ' + w + " " + h + '" role="img" aria-label="' + esc(f.label) + '">' + body + "</svg>";
  }

  function drawCharts() {
    document.querySelectorAll("figure.chart").forEach(function (figure) {
      var board = DATA.charts[figure.dataset.board] || {}, metric = board[figure.dataset.metric] || {};
      var spec = metric[figure.dataset.chart], plot = figure.querySelector(".plot");
      var label = figure.querySelector("figcaption").textContent;
      if (!spec) { plot.textContent = "Not enough data to chart yet."; return; }
      plot.innerHTML = figure.dataset.chart === "spc" ? spcChart(spec, label) : cumulativeChart(spec, label);
    });
  }

  function table() {
    var body = document.querySelector("#board-table tbody");
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows), count = document.getElementById("row-count");
    var search = document.getElementById("board-search");
    var filters = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
    function apply() {
      var needle = search.value.trim().toLowerCase(), shown = 0;
      rows.forEach(function (row) {
        var ok = !needle || row.dataset.board.toLowerCase().indexOf(needle) >= 0 ||
                 row.dataset.name.toLowerCase().indexOf(needle) >= 0;
        filters.forEach(function (select) { ok = ok && (!select.value || row.dataset[select.dataset.filter] === select.value); });
        row.hidden = !ok;
        shown += ok ? 1 : 0;
      });
      count.textContent = shown + " of " + rows.length + " rows";
    }
    search.addEventListener("input", apply);
    filters.forEach(function (select) { select.addEventListener("change", apply); });
    document.querySelectorAll("#board-table th[data-sort]").forEach(function (th) {
      th.querySelector("button").addEventListener("click", function () {
        var key = th.dataset.sort, numeric = th.dataset.type === "number";
        var descending = th.getAttribute("aria-sort") !== "descending";
        document.querySelectorAll("#board-table th[data-sort]").forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        rows.sort(function (a, b) {
          var va = a.dataset[key], vb = b.dataset[key], order;
          if (numeric) {
            va = va === "" ? -Infinity : +va; vb = vb === "" ? -Infinity : +vb;
            order = va < vb ? -1 : va > vb ? 1 : 0;
          } else { order = va.localeCompare(vb); }
          if (order === 0) { order = +a.dataset.rank - +b.dataset.rank; return order; }
          return descending ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
    apply();
  }

  function openFragment() {
    var id = decodeURIComponent(location.hash.slice(1)), target = id && document.getElementById(id);
    if (target) { target.scrollIntoView(); }
  }

  var started = performance.now();
  drawCharts();
  funnel(DATA.funnel);
  table();
  openFragment();
  window.addEventListener("hashchange", openFragment);
  document.documentElement.dataset.renderMs = String(Math.round(performance.now() - started));
  document.documentElement.dataset.ready = "true";
})();
