"""Command line: ``python -m sparsevd_lab.experiments NAME [options]`` (``--help`` lists them)."""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..data import DATASETS, DataError
from ..train import resolve_device
from .lenet import PHASES
from .runners import EXPERIMENTS, run_experiment

OFFLINE_DATASETS = tuple(n if info.offline else f"{n} (with {info.local_dir})"
                         for n, info in DATASETS.items() if info.offline or info.local_dir)


def build_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {e.name:22s} {e.description} (datasets: {', '.join(e.datasets)}; "
                      f"default {e.default_dataset})" for e in EXPERIMENTS.values())
    parser = argparse.ArgumentParser(
        prog="python -m sparsevd_lab.experiments",
        description="Reproduce the Sparse VD paper's experiments (Molchanov et al. 2017).",
        epilog="experiments:\n" + lines + "\n\nSPARSEVD_FAST=1 in the environment implies --fast.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=list(EXPERIMENTS), metavar="NAME",
                        help="experiment: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--dataset", help="data set (default: the experiment's default)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the paper's recipe; fast: 1-2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results",
                        help="output folder (default ./results; the shipped results are in "
                             "sparsevd_lab/results)")
    parser.add_argument("--fast", action="store_true", help="a few seconds: data subset, 1-2 epochs")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu or cuda (on a GPU the data stay on it when they fit)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--resume", action="store_true",
                        help="write a checkpoint after every epoch (under OUT/checkpoints/) and "
                             "continue from it when it exists: a long run over several sittings")
    parser.add_argument("--checkpoint-dir", help="where --resume keeps checkpoints "
                                                 "(default OUT/checkpoints/NAME_DATASET)")
    parser.add_argument("--val-size", type=int,
                        help="training examples held out for validation (default: 5000 on "
                             "fashion-mnist and mnist, 500 on offline-digits, for lenet300, lenet5 "
                             "and classification-sweep)")
    parser.add_argument("--route", choices=("scratch", "from-dense"), default="scratch",
                        help="lenet300/lenet5: Sparse VD from scratch (the paper) or fine-tuned "
                             "from the trained dense net")
    parser.add_argument("--kl-weights", type=float, nargs="+", metavar="W",
                        help="classification-sweep: the KL weights to train (default 0.1 0.3 1 3 10)")
    parser.add_argument("--dense-epochs", type=int,
                        help="lenet300/lenet5: epochs of the dense net (default: --epochs)")
    parser.add_argument("--phases", nargs="+", choices=PHASES, metavar="PHASE",
                        help="lenet300/lenet5 with --resume: train only these phases ("
                             + ", ".join(PHASES) + ") into the checkpoints and write no result; "
                             "start one process per phase to use several cores, then run once "
                             "more without --phases to write the result")
    parser.add_argument("--no-fallback", action="store_true",
                        help="class-run: fail (naming how to get the data) instead of falling back "
                             "to the offline digits when the data set cannot be loaded")
    parser.add_argument("--jobs", type=int, choices=(1, 2),
                        help="class-run: 2 trains the two models in two processes (default on a "
                             "CPU with >= 2 cores), 1 one after the other")
    parser.add_argument("--recipe", nargs="+", metavar="KEY=VALUE",
                        help="class-run: change the class recipe, e.g. --recipe kl_warmup_end=30 "
                             "(keys: epochs, batch_size, lr, lr_flat_fraction, kl_warmup_start, "
                             "kl_warmup_end, log_sigma2_init, threshold)")
    return parser


def _class_run(parser, args, dataset: str, command: str) -> int:
    from .classrun import CLASS_RECIPE, FAST_CLASS_RECIPE, class_run

    bad = [flag for flag, on in (("--resume", args.resume), ("--phases", args.phases),
                                 ("--route", args.route != "scratch"),
                                 ("--dense-epochs", args.dense_epochs),
                                 ("--kl-weights", args.kl_weights)) if on]
    if bad:
        parser.error(f"{', '.join(bad)} do(es) not apply to class-run")
    fast = args.fast or None
    from .. import settings as _settings

    recipe = dict(FAST_CLASS_RECIPE if (fast or _settings.settings().fast) else CLASS_RECIPE)
    for item in args.recipe or []:
        key, _, value = item.partition("=")
        if key not in recipe or not value:
            parser.error(f"--recipe {item!r}: use KEY=VALUE with KEY one of {', '.join(recipe)}")
        try:
            recipe[key] = type(recipe[key])(float(value)) if isinstance(recipe[key], int) \
                else type(recipe[key])(value)
        except ValueError:
            parser.error(f"--recipe {item!r}: {value!r} is not a number")
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    try:
        result = class_run(dataset, out=args.out, fallback=not args.no_fallback, fast=fast,
                           recipe=recipe, seed=args.seed, device=args.device,
                           progress=not args.quiet, jobs=args.jobs, val_size=args.val_size,
                           command=command)
    except DataError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    _print_summary(result)
    print(f"wrote {args.out}/{result['files']['result']}"
          + "".join(f", {args.out}/{v}" for k, v in result["files"].items() if k != "result"))
    return 0


def _print_summary(result: dict) -> None:
    from . import result_frame

    name, res = result["experiment"], result["results"]
    df = result_frame(result)
    if name in ("lenet300", "lenet5", "vgg-like", "class-run"):
        cols = [c for c in ("method", "error_%", "val_error_%", "sparsity_per_layer", "compression")
                if c in df]
        print(df[cols].to_string(index=False))
    elif name == "regression-sweep":
        print(df[["model", "kl_weight", "train_mse", "test_mse", "sparsity_%"]].to_string(index=False))
    elif name == "classification-sweep":
        at3 = df[df.threshold == 3.0] if (df.threshold == 3.0).any() else df
        print(at3[["kl_weight", "threshold", "error_%", "sparsity_per_layer", "compression"]]
              .to_string(index=False))
    elif name == "random-labels":
        for key, s in res["summary"].items():
            print(f"{key}: {s}")
    p = result["provenance"]
    print(f"{p['epochs_note']}; wall time {p['wall_time_s']} s; data: {p['dataset_source']}")


def _unwritable(folder: str) -> str | None:
    """Why ``folder`` cannot take the result files (None when it can): made if missing, then
    probed with a temporary file, so a bad --out fails before minutes of training."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        return f"cannot write there ({err.strerror or type(err).__name__})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    exp = EXPERIMENTS[args.name]
    dataset = args.dataset or exp.default_dataset
    if dataset not in exp.datasets:
        parser.error(f"dataset {dataset!r} does not fit experiment {args.name!r}; valid: "
                     f"{', '.join(exp.datasets)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1; got {args.epochs}")
    if args.dense_epochs is not None and args.dense_epochs < 1:
        parser.error(f"--dense-epochs must be >= 1; got {args.dense_epochs}")
    if (args.route != "scratch" or args.dense_epochs) and args.name not in ("lenet300", "lenet5"):
        parser.error("--route and --dense-epochs apply to lenet300 and lenet5 only")
    if args.kl_weights is not None and args.name != "classification-sweep":
        parser.error("--kl-weights applies to classification-sweep only")
    if args.kl_weights is not None and any(w < 0 for w in args.kl_weights):
        parser.error(f"--kl-weights must be >= 0; got {args.kl_weights}")
    if args.phases and (args.name not in ("lenet300", "lenet5") or not args.resume):
        parser.error("--phases applies to lenet300 and lenet5, with --resume")
    if args.checkpoint_dir and not args.resume:
        parser.error("--checkpoint-dir needs --resume")
    # checked here, before any data is loaded
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1 (the number of CPU threads torch uses, e.g. "
                     f"--threads 2); got {args.threads}")
    if args.val_size is not None and args.val_size < 0:
        parser.error(f"--val-size must be >= 0 (training examples held out for validation; 0: "
                     f"none); got {args.val_size}")
    try:
        resolve_device(args.device)
    except RuntimeError as err:  # no GPU for --device cuda, or an unknown device name
        parser.error(f"--device {args.device}: {str(err).splitlines()[0]}")
    problem = _unwritable(args.out)
    if problem:
        parser.error(f"--out {args.out}: {problem}; give a folder you can write to, e.g. "
                     f"--out results")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m sparsevd_lab.experiments " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if args.name == "class-run":
        return _class_run(parser, args, dataset, command)
    if args.no_fallback or args.jobs or args.recipe:
        parser.error("--no-fallback, --jobs and --recipe apply to class-run only")
    try:
        result = run_experiment(args.name, dataset, epochs=args.epochs, seed=args.seed,
                                out=args.out, fast=args.fast or None, device=args.device,
                                progress=not args.quiet, command=command, resume=args.resume,
                                checkpoint_dir=args.checkpoint_dir, val_size=args.val_size,
                                dense_epochs=args.dense_epochs, route=args.route,
                                kl_weights=args.kl_weights,
                                phases=None if args.phases is None else tuple(args.phases))
    except DataError as err:
        parser.error(f"dataset {dataset!r} could not be loaded: {err}\n"
                     f"Data sets that work with no network: {', '.join(OFFLINE_DATASETS)}; "
                     f"valid for {args.name}: {', '.join(exp.datasets)}")
    except CheckpointError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    except RuntimeError as err:
        if "CUDA" in str(err) or "cuda" in str(err):
            parser.error(str(err))
        raise
    if result is None:
        print(f"phases {', '.join(args.phases)} trained; run the same command without --phases "
              f"to write the result")
        return 0
    _print_summary(result)
    print(f"wrote {args.out}/{result['files']['result']}"
          + "".join(f", {args.out}/{v}" for k, v in result["files"].items() if k != "result"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
