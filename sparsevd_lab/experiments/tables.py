"""Markdown tables of the shipped results beside the paper's, for docs/results.md.

    python -m sparsevd_lab.experiments.tables            # prints the tables of every shipped result
"""
from __future__ import annotations

import json
import statistics
import sys

from ..reports import METHOD_NAMES
from .common import RESULTS_DIR, validate_result

__all__ = ["epoch_seconds", "markdown_tables"]


def _f(v, fmt="{:.2f}"):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return fmt.format(v)


def _wall(p) -> str:
    """The wall time; a run resumed over sittings records only its last sitting."""
    if not p.get("resumed_checkpoints"):
        return f"wall {p['wall_time_s']:.0f} s"
    if p.get("train_time_s"):  # the epochs of every phase, whichever sitting or process ran them
        return f"{p['train_time_s'] / 60:.0f} min of training epochs, run with --resume"
    return f"wall {p['wall_time_s']:.0f} s (run with --resume: the wall time of its last sitting)"


def epoch_seconds(obj) -> dict[str, float]:
    """Median measured seconds per epoch of each training phase in a result's history
    (``{phase: seconds}``; phases without a per-epoch ``seconds`` column are left out)."""
    hist = obj["results"].get("history") or {}
    out = {}
    for phase, h in hist.items():
        if isinstance(h, dict) and h.get("seconds"):
            out[phase] = float(statistics.median(h["seconds"]))
        elif isinstance(h, dict):  # a sweep: one history per KL weight
            secs = [x for v in h.values() if isinstance(v, dict) for x in v.get("seconds", [])]
            if secs:
                out[phase] = float(statistics.median(secs))
    return out


def _times(obj) -> str:
    p, secs = obj["provenance"], epoch_seconds(obj)
    if not secs:
        return ""
    where = f"{p.get('device', 'cpu')}, {p.get('cpu_threads', '?')} thread(s)"
    return ("\n\nMeasured seconds per epoch (median over the run, " + where + "): "
            + ", ".join(f"{k} {v:.2f}" for k, v in secs.items()) + ".")


def _lenet(obj) -> str:
    p = obj["provenance"]
    lines = [f"**{obj['experiment']} on {obj['dataset']}** ({p['epochs_note']}; seed {p['seed']}; "
             f"{_wall(p)}; `{p['command']}`)", "",
             "| method | error % | sparsity per layer % | compression | paper (MNIST): error %, "
             "sparsity, compression |", "|---|---|---|---|---|"]
    for r in obj["results"]["rows"]:
        # the paper's pruning row is Han et al. at their own operating point: never beside the
        # matched-sparsity row (older result files put it there)
        pm = {} if r["method"] == "pruning-matched" else r.get("paper_mnist", {})
        paper = f"{pm.get('error_%', '')}, {pm.get('sparsity_per_layer', '') or '-'}, " \
                f"{pm.get('compression', '')}x" if pm else ""
        sp = r["sparsity_per_layer"] if r["method"] != "dense" else "-"
        name = METHOD_NAMES.get(r["method"], r.get("label") or r["method"])
        lines.append(f"| {name} | {_f(r['error_%'])} | {sp} | "
                     f"{_f(r['compression'], '{:.1f}')}x | {paper} |")
    return "\n".join(lines)


def _class_run(obj) -> str:
    p = obj["provenance"]
    lines = [f"**class-run on {obj['dataset']}** ({p['epochs_note']}; seed {p['seed']}; {_wall(p)}; "
             f"`{p['command']}`)", "",
             "| method | test error % | validation error % | sparsity per layer % | compression |",
             "|---|---|---|---|---|"]
    for r in obj["results"]["rows"]:
        sp = r["sparsity_per_layer"] if r["method"] != "dense" else "-"
        lines.append(f"| {METHOD_NAMES.get(r['method'], r['method'])} | {_f(r['error_%'])} | "
                     f"{_f(r.get('val_error_%'))} | {sp} | {_f(r['compression'], '{:.1f}')}x |")
    return "\n".join(lines)


def _regression(obj) -> str:
    p = obj["provenance"]
    rows = obj["results"]["rows"]
    keys = ["dense" if r["kl_weight"] is None else f"{r['kl_weight']:g}" for r in rows]
    lines = [f"**regression-sweep on {obj['dataset']}** ({p['epochs']} full-batch epochs; seed "
             f"{p['seed']}; wall {p['wall_time_s']:.0f} s; `{p['command']}`)", "",
             "| | " + " | ".join(("KL weight " + k) if k != "dense" else k for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    lines.append("| MSE train | " + " | ".join(_f(r["train_mse"], "{:.2g}") for r in rows) + " |")
    lines.append("| MSE test | " + " | ".join(_f(r["test_mse"], "{:.3f}") for r in rows) + " |")
    lines.append("| sparsity % | " + " | ".join(_f(r["sparsity_%"]) for r in rows) + " |")
    lines.append("| pytorch_ard Boston: MSE train | "
                 + " | ".join(_f(r["ard_boston"]["train_mse"], "{:.3f}") for r in rows) + " |")
    lines.append("| pytorch_ard Boston: MSE test | "
                 + " | ".join(_f(r["ard_boston"]["test_mse"], "{:.3f}") for r in rows) + " |")
    lines.append("| pytorch_ard Boston: sparsity % (its \"compression %\") | "
                 + " | ".join(_f(r["ard_boston"]["sparsity_%"]) for r in rows) + " |")
    return "\n".join(lines)


def _random(obj) -> str:
    p = obj["provenance"]
    s = obj["results"]["summary"]
    lines = [f"**random-labels on {obj['dataset']}** ({p['epochs_note']}; seed {p['seed']}; wall "
             f"{p['wall_time_s']:.0f} s; `{p['command']}`)", "",
             "| model | train acc (eval mode, random labels) | test acc (real labels) | sparsity % | "
             "share of the most common test prediction |", "|---|---|---|---|---|"]
    for k in ("dense", "sparse-vd"):
        r = s[k]
        lines.append(f"| {k} | {r['train_acc']:.3f} | {r['test_acc']:.3f} | {r['sparsity_%']:.2f} | "
                     f"{r['test_prediction_majority_fraction']:.3f} |")
    lines.append("")
    lines.append("Claims: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in s["claims"].items()))
    return "\n".join(lines)


def _sweep(obj) -> str:
    p = obj["provenance"]
    res = obj["results"]
    lines = [f"**classification-sweep on {obj['dataset']}** ({p['epochs_note']}; seed {p['seed']}; "
             f"{_wall(p)}; `{p['command']}`). Threshold 3 (the paper's):", "",
             "| KL weight | error % | sparsity per layer % | compression |", "|---|---|---|---|"]
    for pt in res["points"]:
        if pt["threshold"] == 3.0:
            lines.append(f"| {pt['kl_weight']:g} | {_f(pt['error_%'])} | {pt['sparsity_per_layer']} | "
                         f"{_f(pt['compression'], '{:.1f}')}x |")
    return "\n".join(lines)


def markdown_tables(root=None) -> str:
    root = RESULTS_DIR if root is None else root
    parts = []
    for path in sorted(root.glob("*.json")):
        obj = validate_result(json.loads(path.read_text()))
        fn = {"lenet300": _lenet, "lenet5": _lenet, "vgg-like": _lenet, "regression-sweep": _regression,
              "random-labels": _random, "classification-sweep": _sweep,
                  "class-run": _class_run}[obj["experiment"]]
        parts.append(f"<!-- {path.name} -->\n" + fn(obj) + _times(obj))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_tables())
