"""Does clamping log alpha to [-10, 10] (the authors' code) change a Sparse VD run? One run each.

    nice -n 5 python scripts/clamp_measurement.py --epochs 20           # full Fashion-MNIST, ~3 min a run
    nice -n 5 python scripts/clamp_measurement.py --dataset offline-digits --epochs 30

Trains LeNet-300-100 twice from the same seed: once with the package's layers (log alpha unclamped,
``sparsevd_lab/layers.py``) and once with log alpha clamped to [-10, 10] before the KL and the mask,
as in the authors' PyTorch code (the training forward uses log sigma^2 directly in both). The compiled
kernels are switched off (``kernels.disabled()``, as SPARSEVD_KERNELS=0) for both runs, so both use layers.py's reference code,
where the KL reads the layer's ``log_alpha``. Prints test error, compression and the log alpha range
(all weights, and the kept ones), and how many weights sit beyond each end of the clamp.
"""
from __future__ import annotations

import argparse
import time

import torch

import sparsevd_lab as sv
from sparsevd_lab import kernels
from sparsevd_lab.layers import LinearSVDO, compute_log_alpha

CLAMP = (-10.0, 10.0)


class ClampedLinearSVDO(LinearSVDO):
    """LinearSVDO whose ``log_alpha`` (read by the KL) is clamped to [-10, 10], as the authors'."""

    @property
    def log_alpha(self):
        return torch.clamp(compute_log_alpha(self.weight, self.log_sigma2), *CLAMP)


def clamped(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if type(m) is LinearSVDO:
            m.__class__ = ClampedLinearSVDO
    return model


def summary(name: str, model, history, seconds: float) -> dict:
    with torch.no_grad():
        raw = torch.cat([compute_log_alpha(m.weight, m.log_sigma2).flatten()
                         for _, m in sv.svdo_layers(model)])
    kept = raw[raw < 3.0]
    return {"run": name, "test_error_%": round(100 * (1 - float(history.test_acc.iloc[-1])), 2),
            "compression_x": round(float(history.compression.iloc[-1]), 1),
            "log_alpha_min": round(float(raw.min()), 2), "log_alpha_max": round(float(raw.max()), 2),
            "kept_log_alpha_min": round(float(kept.min()), 2) if len(kept) else None,
            "below_-10_%": round(100 * float((raw < CLAMP[0]).float().mean()), 3),
            "above_10_%": round(100 * float((raw > CLAMP[1]).float().mean()), 2),
            "minutes": round(seconds / 60, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = sv.load_dataset(args.dataset)
    rows = []
    for name in ("unclamped (package)", "clamped [-10, 10] (authors)"):
        sv.set_seed(args.seed)
        model = sv.lenet_300_100()
        if name.startswith("clamped"):
            model = clamped(model)
        start = time.perf_counter()
        with kernels.disabled():  # both runs through layers.py's reference code (SPARSEVD_KERNELS=0)
            history = sv.fit(model, data, epochs=args.epochs, batch_size=100, seed=args.seed,
                             device="cpu", progress=False)
        rows.append(summary(name, model, history, time.perf_counter() - start))
        print(rows[-1], flush=True)
    import pandas as pd

    print(f"\n{args.dataset}, LeNet-300-100, {args.epochs} epochs, batch 100, seed {args.seed}")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
