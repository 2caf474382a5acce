"""The search that chose the class-run recipe, judged on the VALIDATION split only.

    python scripts/class_run_search.py run B C E [--out /tmp/classrun_search]   # train candidates
    python scripts/class_run_search.py table [--out /tmp/classrun_search]       # their table

Each candidate is the class recipe (``sparsevd_lab.experiments.CLASS_RECIPE`` keys) with a few knobs
changed; ``run`` trains it with the class-run command itself (dense twin and Sparse VD in two
processes, one thread each; 5,000 training examples held out, seed 0):

    python -m sparsevd_lab.experiments class-run --dataset fashion-mnist --jobs 2 \
        --out OUT/NAME --recipe KEY=VALUE ...

That command evaluates the test set once at the end of each run (its result file has the test
error). The choice reads only the validation columns, by the rule below, fixed before the runs
ended; ``table`` prints only validation numbers.

Rule: among the candidates whose Sparse VD compression (threshold 3) is >= 25x, the one with the
smallest validation gap (Sparse VD validation error - dense validation error); if none reaches 25x,
the largest compression among those within 1.0 point on validation.

Seconds: the per-epoch seconds in the table are the median and the minimum over the run's epochs on
this machine, contended by other jobs when the search ran; the quiet one-thread figures come from
a separate timing (docs/results.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# The candidates: changes to the second probe of issue 18 (60 epochs, batch 500, Adam 2e-3 flat for
# 30 % of the run then linear to 0, KL warm-up over epochs 2-15, log_sigma2 = -10, threshold 3),
# which missed the 1.0-point floor (+1.19 points at 41x, measured on the test set by the issue).
BASE = {"epochs": 60, "batch_size": 500, "lr": 2e-3, "lr_flat_fraction": 0.3,
        "kl_warmup_start": 2, "kl_warmup_end": 15, "log_sigma2_init": -10.0, "threshold": 3.0}
CANDIDATES = {
    "B": {"kl_warmup_start": 5, "kl_warmup_end": 40},   # a later, longer warm-up
    "C": {"kl_warmup_end": 30},                         # a longer warm-up
    "E": {"lr_flat_fraction": 0.5, "kl_warmup_end": 30},  # and the learning rate flat for longer
    # second round: 90 epochs (what the 5-minute budget allows at batch 500), the warm-ups of B and C
    # stretched in proportion
    "F": {"epochs": 90, "kl_warmup_start": 5, "kl_warmup_end": 60},
    "G": {"epochs": 90, "kl_warmup_end": 45},
}
MIN_COMPRESSION = 25.0


def recipe(name: str) -> dict:
    return {**BASE, **CANDIDATES[name]}


def command(name: str, out: Path) -> list[str]:
    changes = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in recipe(name).items() if v != BASE.get(k) or k in CANDIDATES[name]]
    return [sys.executable, "-m", "sparsevd_lab.experiments", "class-run", "--dataset",
            "fashion-mnist", "--jobs", "2", "--out", str(out / name), "--recipe", *changes]


def load(out: Path) -> dict[str, dict]:
    found = {}
    for name in CANDIDATES:
        path = out / name / "class-run_fashion-mnist.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def choose(results: dict[str, dict]) -> str | None:
    """The rule of the module docstring, on validation numbers only."""
    stats = {}
    for name, obj in results.items():
        rows = {r["method"]: r for r in obj["results"]["rows"]}
        stats[name] = (rows["sparse-vd"]["val_error_%"] - rows["dense"]["val_error_%"],
                       float(rows["sparse-vd"]["compression"]))
    ok = [n for n, (gap, comp) in stats.items() if comp >= MIN_COMPRESSION]
    if ok:
        return min(ok, key=lambda n: (stats[n][0], -stats[n][1]))
    within = [n for n, (gap, _) in stats.items() if gap <= 1.0]
    return max(within, key=lambda n: stats[n][1]) if within else None


def table(results: dict[str, dict]) -> str:
    lines = ["| cand. | epochs | batch | lr | lr flat | KL warm-up | log_sigma2 init | dense val err % "
             "| Sparse VD val err % | val gap | compression | val err % / compression at threshold "
             "2, 4, 5 | s/epoch dense / SVD, median (min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, obj in results.items():
        rec = obj["config"]["recipe"]
        rows = {r["method"]: r for r in obj["results"]["rows"]}
        d, s = rows["dense"], rows["sparse-vd"]
        h = obj["results"]["history"]
        med = {k: sorted(h[k]["seconds"])[len(h[k]["seconds"]) // 2] for k in h}
        low = {k: min(h[k]["seconds"]) for k in h}
        other = ", ".join(f"{p['val_error_%']:.2f} / {float(p['compression']):.0f}x"
                          for p in s.get("val_by_threshold", []) if p["threshold"] != 3.0)
        lines.append(
            f"| {name} | {rec['epochs']} | {rec['batch_size']} | {rec['lr']:g} | "
            f"{rec['lr_flat_fraction']} | {rec['kl_warmup_start']}-{rec['kl_warmup_end']} | "
            f"{rec['log_sigma2_init']:g} | {d['val_error_%']:.2f} | {s['val_error_%']:.2f} | "
            f"{s['val_error_%'] - d['val_error_%']:+.2f} | {float(s['compression']):.1f}x | {other} | "
            f"{med['dense']:.1f} ({low['dense']:.1f}) / {med['sparse-vd']:.1f} "
            f"({low['sparse-vd']:.1f}) |")
    pick = choose(results)
    lines.append("")
    lines.append(f"chosen by the rule (validation only): {pick or 'none'}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("run", "table"))
    p.add_argument("names", nargs="*", help="candidates: " + ", ".join(CANDIDATES))
    p.add_argument("--out", type=Path, default=Path("/tmp/classrun_search"))
    args = p.parse_args()
    if args.what == "table":
        print(table(load(args.out)))
        return 0
    unknown = [n for n in args.names if n not in CANDIDATES]
    if unknown or not args.names:
        p.error(f"name candidates to run, from {', '.join(CANDIDATES)}; got {args.names}")
    procs = [subprocess.Popen(command(n, args.out), env={**os.environ})
             for n in args.names]  # in parallel: each run uses two processes of one thread
    return max(proc.wait() for proc in procs)


if __name__ == "__main__":
    sys.exit(main())
