"""Two Sparse VD training steps timed side by side in one process, with the dense step as yardstick.

    # the compiled C++ kernels against torch.compile of the reference layers (README, "Speed")
    python benchmarks/bench_side_by_side.py --compiled-reference
    # this checkout against an older one (e.g. git archive f721898 sparsevd_lab | tar -x -C /tmp/old)
    python benchmarks/bench_side_by_side.py --old /tmp/old

One thread, batch 100, LeNet-300-100 and LeNet-5; each repeat times a block of steps of every variant
in turn (rotating who goes first), and the medians are printed. The second package is a copy of the
source under another name, so both live in one process and meet the same background load.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import sparsevd_lab as sv


def _copy_as(source: Path, name: str):
    folder = Path(tempfile.mkdtemp(prefix="sparsevd_side_"))
    shutil.copytree(source, folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def _step(pkg, name: str, svdo: bool):
    model = pkg.build_model(name, svdo=svdo).train()
    opt = pkg.make_optimizer(model, lr=1e-3)
    loss_fn = pkg.SGVLB(model, 60000) if svdo else F.cross_entropy

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--compiled-reference", action="store_true",
                      help="C++ kernels (eager) against torch.compile of the reference layers")
    mode.add_argument("--old", type=Path, help="a folder holding an older sparsevd_lab package")
    p.add_argument("--repeats", type=int, default=12)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.compiled_reference:
        other = _copy_as(Path(sv.__file__).parent, "sparsevd_lab_reference")
        other.layers._fast_path = lambda *a: False  # this copy runs the reference only
        labels = ("C++ SVDO", "compiled reference SVDO")
    else:
        other = _copy_as(args.old / "sparsevd_lab", "sparsevd_lab_old")
        labels = ("new SVDO", "old SVDO")
    for name, steps in (("lenet300", 20), ("lenet5", 3)):
        torch.manual_seed(0)
        x, y = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))
        second = _step(other, name, True)
        fns = {"dense": _step(sv, name, False), labels[0]: _step(sv, name, True),
               labels[1]: torch.compile(second) if args.compiled_reference else second}
        for f in fns.values():
            for _ in range(3):  # warm-up (allocator, compile)
                f(x, y)
        times = {k: [] for k in fns}
        for r in range(args.repeats):
            order = list(fns)[r % 3:] + list(fns)[:r % 3]
            for k in order:
                t0 = time.perf_counter()
                for _ in range(steps):
                    fns[k](x, y)
                times[k].append((time.perf_counter() - t0) / steps)
        med = {k: statistics.median(v) for k, v in times.items()}
        a, b = med[labels[0]], med[labels[1]]
        print(f"{name}: dense {1e3 * med['dense']:.3f} ms, {labels[0]} {1e3 * a:.3f} ms "
              f"({a / med['dense']:.2f}x), {labels[1]} {1e3 * b:.3f} ms ({b / med['dense']:.2f}x); "
              f"{labels[1]} / {labels[0]} {b / a:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
