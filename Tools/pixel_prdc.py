#!/usr/bin/env python3
"""Precision and recall (k = 3, clovaai's PRDC definitions, strict <) of generated images against 3,000 real
Fashion-MNIST t10k images in raw pixel space ([-1, 1], 784-d): a feature space that the bundled classifier, which
`gpugen train gan --instance-selection` selects with and `gpugen evaluate` measures in, has no part in.

    gpugen sample --model gan --n 3000 --seed 0 --npy samples.npy --out samples.png
    python3 Tools/pixel_prdc.py samples.npy [more.npy ...]     # numpy
    python3 Tools/pixel_prdc.py --floor                          # 3,000 other t10k images: the real-vs-real floor

The real set is a fixed draw (numpy default_rng(0)); the floor set is 3,000 of the remaining images (rng 1).
"""
import gzip
import sys

import numpy as np

T10K = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def load_t10k():
    d = gzip.open(T10K).read()
    return np.frombuffer(d, np.uint8, offset=16).reshape(-1, 784).astype(np.float64) / 127.5 - 1


def squared_distances(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0)


def radii(a, k=3):
    # The k-th neighbour of each point within its own set, itself included as the 0-th.
    return np.sqrt(np.sort(squared_distances(a, a), axis=1)[:, k])


def precision_recall(real, fake):
    d = np.sqrt(squared_distances(real, fake))
    precision = (d < radii(real)[:, None]).any(0).mean()
    recall = (d < radii(fake)[None, :]).any(1).mean()
    return precision, recall


def main():
    x = load_t10k()
    chosen = np.random.default_rng(0).choice(len(x), 3000, replace=False)
    real = x[chosen]
    for arg in sys.argv[1:]:
        if arg == "--floor":
            rest = np.setdiff1d(np.arange(len(x)), chosen)
            fake, name = x[np.random.default_rng(1).choice(rest, 3000, replace=False)], "real-vs-real floor"
        else:
            fake, name = np.load(arg).reshape(-1, 784).astype(np.float64)[:3000], arg
        p, r = precision_recall(real, fake)
        print(f"{name}: pixel-space precision {p:.3f} recall {r:.3f}")


if __name__ == "__main__":
    main()
