"""R's default normal generator (Mersenne-Twister + Inversion), so the vectors NHSRplotthedots' tests draw with
``set.seed(123); rnorm(...)`` can be reproduced without R. Run this file to regenerate ``vectors.json``.

R (src/main/RNG.c): ``set.seed`` scrambles the seed with 50 rounds of ``seed = 69069 * seed + 1`` (32-bit), fills
the 625 Mersenne-Twister words the same way and sets the position word to 624; ``unif_rand`` is the tempered
32-bit output times 2.3283064365386963e-10; ``norm_rand`` (Inversion) is
``qnorm((floor(2^27 * u1) + u2) / 2^27)``; ``rnorm(n, mean, sd) = mean + sd * norm_rand()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import NormalDist

import numpy as np

BIG = 134217728  # 2^27
_STANDARD_NORMAL = NormalDist()  # inv_cdf is Wichura's AS241, as R's qnorm


class RRandom:
    def __init__(self, seed: int) -> None:
        s = seed & 0xFFFFFFFF
        for _ in range(50):
            s = (69069 * s + 1) & 0xFFFFFFFF
        words = []
        for _ in range(625):
            s = (69069 * s + 1) & 0xFFFFFFFF
            words.append(s)
        self._mt = np.random.MT19937()
        self._mt.state = {"bit_generator": "MT19937",
                          "state": {"key": np.array(words[1:], dtype=np.uint32), "pos": 624}}

    def unif_rand(self) -> float:
        value = int(self._mt.random_raw()) * 2.3283064365386963e-10
        if value <= 0.0:
            return 0.5 * 2.328306437080797e-10
        if 1.0 - value <= 0.0:
            return 1.0 - 0.5 * 2.328306437080797e-10
        return value

    def norm_rand(self) -> float:
        u = self.unif_rand()
        u = int(BIG * u) + self.unif_rand()
        return _STANDARD_NORMAL.inv_cdf(u / BIG)

    def rnorm(self, n: int, mean: float = 0.0, sd: float = 1.0) -> list[float]:
        return [mean + sd * self.norm_rand() for _ in range(n)]


def vectors() -> dict[str, list[float]]:
    rng = RRandom(123)
    rnorm20 = rng.rnorm(20)  # test-ptd_spc_standard.R, test-ptd_spc.R, test-ptd_create_ggplot.R
    rng = RRandom(123)
    icons24 = rng.rnorm(24)  # test-geom_ptd_icon.R: d$y, then d$y[f == 1] replaced twice
    icons_high = rng.rnorm(12, 5)
    icons_low = rng.rnorm(12, -5)
    return {
        "rnorm20_seed123": rnorm20,
        "icons_rnorm24_seed123": icons24,
        "icons_then_rnorm12_mean5": icons_high,
        "icons_then_rnorm12_mean_minus5": icons_low,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("vectors.json")
    out.write_text(json.dumps(vectors(), indent=1) + "\n")
    print(out)
