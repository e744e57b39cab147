#!/usr/bin/env python3
"""Reference scores of toy 2-D point sets (ToyMetrics.score in Sources/GPUGenModels/Toy/ToyMetrics.swift).

Writes toy.json next to this file: a list of cases {name, dataset, points (float32 values, row-major x, y pairs),
expected {modes, count, highQualityPerMode, modesCoveredHighQuality, modesCoveredShare, highQualityFraction,
klFromUniform}}. ToyTests compares the integers exactly and the floats to 1e-9.

The definitions, written independently of the Swift code:
  - modes: ring8 (2 cos(2πk/8), 2 sin(2πk/8)), σ = 0.02; grid25 x = −4 + 2·(k mod 5), y = −4 + 2·⌊k/5⌋, σ = 0.05;
  - a point is high quality (HQ) when its squared distance (float64, from the float32 coordinates) to its nearest
    mode is ≤ (3σ)²; n_k = HQ points of mode k, N = all points, K = modes;
  - modesCoveredHighQuality = #{k: n_k ≥ 1}; modesCoveredShare = #{k: n_k ≥ 1 and n_k ≥ 0.1·N/K};
  - highQualityFraction = Σn_k / N (0 for N = 0);
  - klFromUniform = Σ_{n_k>0} p_k log(p_k K), p_k = n_k / Σn; log K when no point is HQ.
Points are kept at least 1e-6 (relative) away from the 3σ boundary so that libm differences in the ring's
cos/sin cannot flip a point.

    python3 Tests/GPUGenModelsTests/Fixtures/toy/make_fixtures.py     (numpy only)
"""
import json
import math
import os

import numpy as np

DATASETS = {
    "ring8": (np.array([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)]),
              0.02),
    "grid25": (np.array([[-4.0 + 2 * (k % 5), -4.0 + 2 * (k // 5)] for k in range(25)]), 0.05),
}


def score(points, dataset):
    modes, sigma = DATASETS[dataset]
    k = len(modes)
    p = points.astype(np.float64).reshape(-1, 2)
    n = len(p)
    r = 3.0 * sigma
    limit = r * r
    per_mode = np.zeros(k, dtype=np.int64)
    if n:
        d2 = ((p[:, None, :] - modes[None, :, :]) ** 2).sum(axis=2)  # (N, K)
        nearest = d2.argmin(axis=1)
        best = d2[np.arange(n), nearest]
        rel = np.abs(best - limit) / limit
        assert rel.min() > 1e-6, "a point lies on the 3σ boundary; change the set"
        hq = best <= limit
        per_mode = np.bincount(nearest[hq], minlength=k)
    total = int(per_mode.sum())
    if total == 0:
        kl = math.log(k)
    else:
        kl = 0.0
        for c in per_mode:
            if c > 0:
                q = c / total
                kl += q * math.log(q * k)
    return {
        "modes": k,
        "count": n,
        "highQualityPerMode": [int(c) for c in per_mode],
        "modesCoveredHighQuality": int((per_mode > 0).sum()),
        "modesCoveredShare": int(((per_mode > 0) & (10 * k * per_mode >= n)).sum()),
        "highQualityFraction": total / n if n else 0.0,
        "klFromUniform": kl,
    }


def around(rng, dataset, mode_ids, spread=1.0):
    """Points drawn around the given modes with `spread`·σ per coordinate."""
    modes, sigma = DATASETS[dataset]
    ids = np.asarray(mode_ids)
    return modes[ids] + spread * sigma * rng.standard_normal((len(ids), 2))


def main():
    rng = np.random.RandomState(20240611)
    cases = []

    def add(name, dataset, pts):
        pts = np.asarray(pts, dtype=np.float32).reshape(-1, 2)
        cases.append({
            "name": name,
            "dataset": dataset,
            "points": [float(v) for v in pts.reshape(-1)],
            "expected": score(pts, dataset),
        })

    # Every mode of the ring, drawn from the data distribution.
    add("ring8-all-modes", "ring8", around(rng, "ring8", rng.randint(0, 8, 400)))
    # Collapsed onto 3 modes, unevenly.
    add("ring8-three-modes", "ring8", around(rng, "ring8", [0] * 150 + [3] * 90 + [5] * 60))
    # Uniform noise over the plot square: few or no HQ points.
    add("ring8-off-mode-noise", "ring8", rng.uniform(-3, 3, (300, 2)))
    # All points between the modes (radius 1 and 3 circles): no HQ point, KL defined as log 8.
    ang = rng.uniform(0, 2 * math.pi, 100)
    rad = np.where(rng.rand(100) < 0.5, 1.0, 3.0)
    add("ring8-no-high-quality", "ring8", np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1))
    # grid25, 500 points: modes 0–21 fair (≈ 21 each), mode 22 exactly 2 HQ points (= 10 % of N/K = 20: covered),
    # mode 23 exactly 1 (hit, not covered by share), mode 24 none; plus 20 points spread at 4σ (some not HQ).
    ids = list(np.arange(22).repeat(21)) + [22, 22, 23]
    tight = around(rng, "grid25", ids, spread=0.8)
    wide = around(rng, "grid25", rng.randint(0, 22, 500 - len(ids)), spread=4.0)
    add("grid25-share-boundary", "grid25", np.concatenate([tight, wide]))
    # grid25 at 2σ: a lower HQ fraction, all modes.
    add("grid25-wide", "grid25", around(rng, "grid25", rng.randint(0, 25, 600), spread=2.0))
    # Mode collapse onto one grid point, plus one exact mode centre elsewhere.
    add("grid25-one-mode", "grid25", np.concatenate([around(rng, "grid25", [12] * 99), [[4.0, 4.0]]]))
    # No points at all.
    add("grid25-empty", "grid25", np.zeros((0, 2)))

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy.json")
    with open(out, "w") as f:
        json.dump({"generator": "make_fixtures.py", "numpy": np.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    for c in cases:
        e = c["expected"]
        print(f'{c["name"]:24s} N={e["count"]:4d} hit={e["modesCoveredHighQuality"]:2d} '
              f'share={e["modesCoveredShare"]:2d} hq={e["highQualityFraction"]:.4f} kl={e["klFromUniform"]:.6f}')


if __name__ == "__main__":
    main()
