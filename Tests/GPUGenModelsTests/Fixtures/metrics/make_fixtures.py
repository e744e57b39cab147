#!/usr/bin/env python3
"""Reference values of gpugen's feature-space metrics (Sources/GPUGenModels/Eval/), from NumPy and SciPy.

Writes metrics.json next to this file: cases {name, dimension, real (float32 values, row-major), generated,
kid_subsets, kid_subset_size, kid_seed, expected {fid, kid_mean, kid_std, precision, recall, density, coverage}}.
MetricsTests compares FID and KID to 1e-4 relative and precision, recall, density and coverage exactly.

The definitions, written independently of the Swift code:
  - FID: ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂)), covariances with ddof 1 (numpy.cov), sqrtm from
    scipy.linalg (its real part), as pytorch-fid computes it;
  - KID: torch-fidelity's unbiased MMD² with the kernel (x·y/d + 1)³, over `kid_subsets` subsets of
    `kid_subset_size` points of each set; mean and numpy std (ddof 0). Subset s of a set of n points: the
    points with the smallest Philox word 0 of counter (0, i, s, stream) under the seed's key (ties by index),
    stream 0x9000_0010 for the generated set and 0x9000_0011 for the real set (Tools/gpugen_random.py's Philox);
  - precision, recall (k = 3), density, coverage (k = 5): clovaai's prdc formulas, strict `<`, the k-th
    neighbour radius taken as the (k+1)-th smallest distance of a point to its own set (itself included), with
    Euclidean distances in float64 from the float32 features.

    python3 Tests/GPUGenModelsTests/Fixtures/metrics/make_fixtures.py     (numpy, scipy)
"""
import json
import os
import sys

import numpy as np
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "Tools"))
from gpugen_random import philox_block  # noqa: E402

KID_STREAM = 0x9000_0010


def fid(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def subset(n, size, s, seed, stream):
    counters = np.zeros((n, 4), dtype=np.uint32)
    counters[:, 1] = np.arange(n)
    counters[:, 2] = s
    counters[:, 3] = stream
    words = philox_block(counters, seed)[:, 0].astype(np.int64)
    return np.lexsort((np.arange(n), words))[:size]


def mmd2(x, y):
    d = x.shape[1]
    m = x.shape[0]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return ((kxx.sum() - np.diag(kxx).sum()) / (m * (m - 1)) + (kyy.sum() - np.diag(kyy).sum()) / (m * (m - 1))
            - 2 * kxy.sum() / (m * m))


def kid(real, gen, subsets, size, seed):
    vals = []
    for s in range(subsets):
        ig = subset(len(gen), size, s, seed, KID_STREAM)
        ir = subset(len(real), size, s, seed, KID_STREAM + 1)
        vals.append(mmd2(gen[ig], real[ir]))
    return float(np.mean(vals)), float(np.std(vals))


def distances(a, b):
    return np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0))


def kth_radii(x, k):
    return np.sort(distances(x, x), axis=1)[:, k]


def prdc(real, gen, k_pr=3, k_dc=5):
    d_rf = distances(real, gen)
    r_pr, f_pr, r_dc = kth_radii(real, k_pr), kth_radii(gen, k_pr), kth_radii(real, k_dc)
    precision = (d_rf < r_pr[:, None]).any(axis=0).mean()
    recall = (d_rf < f_pr[None, :]).any(axis=1).mean()
    density = (1 / k_dc) * (d_rf < r_dc[:, None]).sum(axis=0).mean()
    coverage = (d_rf.min(axis=1) < r_dc).mean()
    return float(precision), float(recall), float(density), float(coverage)


def case(name, real, gen, subsets, size, seed):
    real = real.astype(np.float32)
    gen = gen.astype(np.float32)
    r64, g64 = real.astype(np.float64), gen.astype(np.float64)
    km, ks = kid(r64, g64, subsets, size, seed)
    p, r, d, c = prdc(r64, g64)
    return {
        "name": name, "dimension": real.shape[1],
        "real": [float(v) for v in real.ravel()], "generated": [float(v) for v in gen.ravel()],
        "kid_subsets": subsets, "kid_subset_size": size, "kid_seed": seed,
        "expected": {"fid": fid(r64, g64), "kid_mean": km, "kid_std": ks, "precision": p, "recall": r,
                     "density": d, "coverage": c},
    }


def main():
    rng = np.random.default_rng(12)
    cases = []
    # ReLU-like features (many zeros, as a classifier's penultimate layer gives), generated set shifted,
    # narrower and missing a cluster: precision, recall, density and coverage all away from 1.
    centres = rng.normal(0, 2, size=(6, 16))
    real = np.maximum(centres[rng.integers(0, 6, 300)] + rng.normal(0, 1, (300, 16)), 0)
    gen = np.maximum(centres[rng.integers(0, 4, 240)] * 1.1 + 0.3 + rng.normal(0, 0.7, (240, 16)), 0)
    cases.append(case("relu-clusters", real, gen, 100, 120, 3))
    # Two samples of one Gaussian: KID near 0, FID small but positive (its bias).
    a = rng.normal(0, 1, (200, 8))
    b = rng.normal(0, 1, (200, 8))
    cases.append(case("same-distribution", a, b, 50, 100, 7))
    with open(os.path.join(HERE, "metrics.json"), "w") as f:
        json.dump(cases, f)
        f.write("\n")
    for c in cases:
        print(c["name"], c["expected"])


if __name__ == "__main__":
    main()
