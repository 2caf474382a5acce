"""Training-step time of Sparse VD layers relative to dense layers, beside pytorch_ard 0.2.4.

For LeNet-300-100 and LeNet-5 on CPU, one step = forward, loss (SGVLB for Sparse VD, pytorch_ard's
ELBOLoss for ARD, cross-entropy for dense), backward and an Adam update. The three variants are timed
interleaved in one process (each repeat times a block of steps of every variant in turn) and the
table reports median step times and their ratio to dense.

    python benchmarks/bench_train_step.py                 # batch 100 and 1000, 7 repeats
    python benchmarks/bench_train_step.py --fast          # smoke run

pytorch_ard is optional: `pip install --no-deps pytorch_ard==0.2.4` (its torchvision requirement is
unused by its layers).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import sparsevd_lab as sv

try:
    import torch_ard
except ImportError:  # optional comparison
    torch_ard = None


def ard_model(name: str) -> nn.Module:
    L, C = torch_ard.LinearARD, torch_ard.Conv2dARD
    if name == "lenet300":
        return nn.Sequential(nn.Flatten(), L(784, 300), nn.ReLU(), L(300, 100), nn.ReLU(), L(100, 10))
    return nn.Sequential(C(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), C(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), L(800, 500), nn.ReLU(), L(500, 10))


def make_step(kind: str, model: nn.Module, train_size: int):
    opt = sv.make_optimizer(model, lr=1e-3)  # the same (fused) Adam for every variant
    if kind == "sparsevd":
        loss_fn = sv.SGVLB(model, train_size)
    elif kind == "pytorch_ard":
        elbo = torch_ard.ELBOLoss(model, F.cross_entropy)
        loss_fn = lambda out, y: elbo(out, y, loss_weight=1.0, kl_weight=1.0 / train_size)  # noqa: E731
    else:
        loss_fn = F.cross_entropy

    def step(x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench(name: str, batch: int, repeats: int, steps: int, compile_: bool) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    builders = {"dense": lambda: sv.build_model(name, svdo=False),
                "sparsevd": lambda: sv.build_model(name, svdo=True)}
    if torch_ard is not None:
        builders["pytorch_ard"] = lambda: ard_model(name)
    steps_fns = {}
    for kind, build in builders.items():
        model = build().train()
        fn = make_step(kind, model, train_size=60000)
        if compile_ and kind != "pytorch_ard":
            fn = torch.compile(fn)
        for _ in range(3):  # warm-up (allocator, compile)
            fn(x, y)
        steps_fns[kind] = fn
    # blocks of about a quarter second, at most `steps` steps (LeNet-5 at batch 1000 is slow)
    t0 = time.perf_counter()
    steps_fns["dense"](x, y)
    steps = max(2, min(steps, round(0.25 / max(time.perf_counter() - t0, 1e-6))))
    times = {k: [] for k in steps_fns}
    for r in range(repeats):
        order = list(steps_fns)
        order = order[r % len(order):] + order[: r % len(order)]  # rotate who goes first
        for kind in order:
            t0 = time.perf_counter()
            for _ in range(steps):
                steps_fns[kind](x, y)
            times[kind].append((time.perf_counter() - t0) / steps)
    result = {k: statistics.median(v) for k, v in times.items()}
    result["steps"] = steps
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--models", nargs="+", default=["lenet300", "lenet5"], choices=["lenet300", "lenet5"])
    p.add_argument("--repeats", type=int, default=7, help="interleaved repeats (median is reported)")
    p.add_argument("--steps", type=int, default=20, help="at most this many steps per timed block "
                   "(fewer where a step is slow: blocks of about 0.25 s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings stable)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd steps")
    p.add_argument("--fast", action="store_true", help="smoke run: batch 100, 2 repeats, 2 steps")
    args = p.parse_args(argv)
    if args.fast:
        args.batches, args.repeats, args.steps = [100], 2, 2
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, sparsevd_lab {sv.__version__}, threads {args.threads}, "
          f"pytorch_ard {'0.2.4' if torch_ard else 'not installed'}; median of {args.repeats} "
          f"interleaved repeats of a block of steps (column 'steps')")
    header = f"{'model':<9} {'batch':>5} {'steps':>5} {'dense ms':>9} {'SVDO ms':>8} {'SVDO/dense':>10}"
    if torch_ard is not None:
        header += f" {'ARD ms':>8} {'ARD/dense':>9}"
    variants = [False] + ([True] if args.compile else [])
    for compiled in variants:
        print(("\ntorch.compile\n" if compiled else "\neager\n") + header)
        for name in args.models:
            for batch in args.batches:
                t = bench(name, batch, args.repeats, args.steps, compiled)
                line = (f"{name:<9} {batch:>5} {t['steps']:>5} {1e3 * t['dense']:>9.3f} {1e3 * t['sparsevd']:>8.3f} "
                        f"{t['sparsevd'] / t['dense']:>10.2f}")
                if "pytorch_ard" in t:
                    line += f" {1e3 * t['pytorch_ard']:>8.3f} {t['pytorch_ard'] / t['dense']:>9.2f}"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
