"""Tiny generated data for the tests: 28x28 images whose class is a bright square at one of ten
places, learnable in one epoch and free of the seconds it takes to load a real data set."""
from __future__ import annotations

import torch

from sparsevd_lab import DataBundle


def squares_bundle(n_train: int, n_test: int, name: str, source: str) -> DataBundle:
    """A DataBundle of ``n_train`` training and ``n_test`` test images, drawn in that order from one
    generator seeded 0 (so the same sizes give the same data)."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = 0.1 * torch.randn(n, 1, 28, 28, generator=g)
        for i, c in enumerate(y.tolist()):
            r, col = divmod(c, 5)
            x[i, 0, 4 + 10 * r:10 + 10 * r, 2 + 5 * col:6 + 5 * col] += 1.0
        return x, y

    return DataBundle(name, source, *make(n_train), *make(n_test))
