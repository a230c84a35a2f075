"""The historic event log: its format, and the two ways of reading it that decide every line alike.

* :mod:`producers.eventlog.logformat`: JSON Lines or CSV, one event per line; parsing a line and putting
  it through the contract (:func:`~producers.eventlog.logformat.check_line`), as ``bcfwatch replay`` does;
* :mod:`producers.eventlog.reader`: a whole log read column by column (the batch side's fast way), or line
  by line; its parts:
  :mod:`~producers.eventlog.byte_lines` (blocks, chunks and line spans of the bytes),
  :mod:`~producers.eventlog.arrow_json` (the lines Arrow's JSON reader reads as the contract would),
  :mod:`~producers.eventlog.column_checks` (the contract's checks a column at a time),
  :mod:`~producers.eventlog.line_checks` (every other line through ``check_line``),
  :mod:`~producers.eventlog.compact` (the compact events both produce) and
  :mod:`~producers.eventlog.rejects` (rejected lines, redacted, by reason).
"""
