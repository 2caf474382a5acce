"""Predict, then see: a student writes a prediction before a cell measures the answer.

In a notebook, two cells::

    MY_PREDICTION = None   # your guess: a number (e.g. 0.3)
    predictions.ask("01-flip", "What fraction of the sampled weights flips sign at alpha = 1?",
                    prediction=MY_PREDICTION)

    ...                    # the cell that measures ``flip_rate``
    predictions.reveal("01-flip", flip_rate)

``ask`` prints the question; a prediction written into the call (a number, or one of ``choices``) is
checked and saved; ``None`` saves nothing and says where to write it. ``reveal`` prints the saved
prediction beside the measured value and saves the value too. Nothing waits for input: the notebooks
run headless (nbval, CI) as they are.

The predictions live in a small JSON file beside the notebook: ``predictions.json`` in the current
folder (the notebook's folder in Jupyter), or the path in ``SPARSEVD_PREDICTIONS``; the student's name
is ``SPARSEVD_STUDENT`` or else the file's name. A lecturer collects the files and runs::

    python -m sparsevd_lab.predictions report alice.json bob.json ... --out report/

which prints a table and writes one figure per question: the class's predictions (a histogram for a
number, a bar per choice) with the measured value marked. Asking the class first and showing the
spread of its answers is peer instruction (Mazur 1997).
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .files import atomic_path, atomic_write_text
from .settings import settings

__all__ = ["ask", "reveal", "predictions_path", "load", "collect", "plot_question", "report",
           "PredictionFileError", "FORMAT", "KINDS"]

FORMAT = "sparsevd-lab predictions"  # the file's "format" field: how a report recognises the file
VERSION = 1
KINDS = ("number", "choice")
_QID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # also a figure's file name in the report


class PredictionFileError(ValueError):
    """A file that is not a predictions file (or a damaged one); the message names the file."""


def predictions_path() -> Path:
    """The file ``ask``/``reveal`` write: ``SPARSEVD_PREDICTIONS`` or ``./predictions.json``."""
    return settings().predictions


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_qid(qid) -> str:
    if not isinstance(qid, str) or not _QID.match(qid):
        raise ValueError(f"question id {qid!r}: use letters, digits, '-', '_' or '.', e.g. '01-flip'")
    return qid


def _check_question(kind: str, choices) -> list[str] | None:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use 'number' or 'choice'")
    if kind == "number":
        if choices is not None:
            raise ValueError("a 'number' question takes no choices; give kind='choice' with them")
        return None
    if (not isinstance(choices, (list, tuple)) or len(choices) < 2
            or not all(isinstance(c, str) and c for c in choices) or len(set(choices)) != len(choices)):
        raise ValueError(f"a 'choice' question needs choices: a list of two or more different "
                         f"strings, e.g. ['yes', 'no']; got {choices!r}")
    return list(choices)


def _number(x, what: str) -> float:
    """``x`` as a finite float; bool, strings and non-finite values are refused."""
    if isinstance(x, bool) or isinstance(x, str):
        raise ValueError(f"{what} must be a number such as 0.3 (without quotes); got {x!r}")
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number such as 0.3; got {x!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number; got {value}")
    return value


def _check_answer(x, kind: str, choices, what: str):
    if kind == "number":
        return _number(x, what)
    if x not in choices:
        raise ValueError(f"{what} must be one of {choices} (copy it exactly, with the quotes); "
                         f"got {x!r}")
    return x


def load(path) -> dict:
    """The predictions file at ``path`` as a dict (``{"format", "version", "student",
    "questions": {qid: record}}``); PredictionFileError naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionFileError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PredictionFileError(f"{path} is not a predictions file (not JSON: {err}); give the "
                                  f"predictions.json files that the notebooks wrote") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PredictionFileError(f"{path} is not a predictions file (no \"format\": \"{FORMAT}\" "
                                  f"field); give the predictions.json files that the notebooks wrote")
    if data.get("version") != VERSION or not isinstance(data.get("questions"), dict):
        raise PredictionFileError(f"{path}: a predictions file of version {data.get('version')!r} or "
                                  f"without its questions; this package reads version {VERSION}")
    for qid, rec in data["questions"].items():
        if not (isinstance(rec, dict) and rec.get("kind") in KINDS and "prediction" in rec):
            raise PredictionFileError(f"{path}: question {qid!r} is damaged (no kind or prediction)")
    return data


def _read_or_new(path: Path) -> dict:
    if path.exists():
        return load(path)
    return {"format": FORMAT, "version": VERSION, "student": None, "questions": {}}


def _write(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def ask(qid: str, prompt: str, kind: str = "number", choices: list[str] | None = None,
        prediction=None) -> None:
    """Show question ``qid``; record ``prediction`` when one is written into the call.

    ``kind`` is "number" (any finite number) or "choice" (one of ``choices``). A prediction that is
    not valid raises ValueError saying what to write; ``None`` records nothing and prints where to
    write one. A prediction for a question already revealed is not replaced (delete the file to start
    afresh): the class's picture is of predictions made before seeing the answer."""
    _check_qid(qid)
    choices = _check_question(kind, choices)
    print(f"PREDICT [{qid}] {prompt}")
    if choices:
        print("  choices: " + ", ".join(repr(c) for c in choices))
    if prediction is None:
        print(f"  -> write your prediction into prediction=... of this ask('{qid}', ...) call (the "
              f"variable in the cell above) first, run this cell, then run on to the reveal.")
        return
    prediction = _check_answer(prediction, kind, choices, "your prediction")
    path = predictions_path()
    data = _read_or_new(path)
    old = data["questions"].get(qid)
    if old is not None and old.get("value") is not None and old.get("prediction") != prediction:
        print(f"  [{qid}] was already revealed; your first prediction, {_fmt(old['prediction'])}, "
              f"stays in {path} (delete that file to start afresh).")
        return
    data["student"] = settings().student or data.get("student") or None
    data["questions"][qid] = {"qid": qid, "prompt": prompt, "kind": kind, "choices": choices,
                              "prediction": prediction, "predicted_at": _now(),
                              "value": old.get("value") if old else None,
                              "revealed_at": old.get("revealed_at") if old else None}
    _write(path, data)
    print(f"  recorded: {_fmt(prediction)} (in {path})")


def reveal(qid: str, value) -> None:
    """Print the recorded prediction of ``qid`` beside the measured ``value`` (for a number: the
    difference; for a choice: right or not), and record the value. Without a recorded prediction it
    says so, shows the value and writes nothing."""
    _check_qid(qid)
    path = predictions_path()
    data = _read_or_new(path)
    rec = data["questions"].get(qid)
    if rec is None:
        shown = _fmt(_number(value, "the measured value")) if _is_number(value) else value
        print(f"REVEAL [{qid}] measured: {shown}   (no prediction recorded for it in {path}: next "
              f"time write one into the ask('{qid}', ...) call first)")
        return
    value = _check_answer(value, rec["kind"], rec["choices"], "the measured value")
    guess = rec["prediction"]
    if rec["kind"] == "number":
        diff = value - guess
        rel = f", {abs(diff) / abs(value):.0%} of the measured value" if value != 0 else ""
        verdict = f"difference measured - predicted = {diff:+.4g}{rel}"
    else:
        verdict = "your prediction was right" if guess == value else "your prediction was not right"
    print(f"REVEAL [{qid}] your prediction: {_fmt(guess)}   measured: {_fmt(value)}   ({verdict})")
    rec["value"], rec["revealed_at"] = value, _now()
    _write(path, data)


def _is_number(x) -> bool:
    try:
        _number(x, "")
        return True
    except ValueError:
        return False


# --- the lecturer's report ----------------------------------------------------------------------

def collect(paths: Sequence) -> dict:
    """{qid: {"prompt", "kind", "choices", "predictions": {student: prediction}, "values": [...]}}
    over the predictions files ``paths`` (a student is the file's ``student`` or its name)."""
    if not paths:
        raise ValueError("give one or more predictions files (the predictions.json of each student)")
    questions: dict = {}
    for path in paths:
        data = load(path)
        student = data.get("student") or Path(path).stem
        if student == "predictions":  # every default file has that name: use its folder's
            student = Path(path).resolve().parent.name + "/" + Path(path).name
        for qid, rec in data["questions"].items():
            q = questions.setdefault(qid, {"qid": qid, "prompt": rec.get("prompt", ""),
                                           "kind": rec["kind"], "choices": rec.get("choices"),
                                           "predictions": {}, "values": []})
            if q["kind"] != rec["kind"]:
                raise PredictionFileError(f"{path}: question {qid!r} is a {rec['kind']} there but a "
                                          f"{q['kind']} in an earlier file")
            if student in q["predictions"]:
                student = f"{student} ({path})"
            q["predictions"][student] = rec["prediction"]
            if rec.get("value") is not None:
                q["values"].append(rec["value"])
    return questions


def _measured(q: dict):
    """The measured value of a question: the median over the students' runs (numbers), the most
    common (choices); None when nobody revealed it."""
    if not q["values"]:
        return None
    if q["kind"] == "number":
        v = sorted(q["values"])
        n = len(v)
        return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
    return Counter(q["values"]).most_common(1)[0][0]


def _table(questions: dict):
    """One row per question: how many predicted, the measured value, and how many were "right"
    (a number within 10 % of the measured value; a choice equal to it)."""
    import pandas as pd

    rows = []
    for qid, q in questions.items():
        preds, true = list(q["predictions"].values()), _measured(q)
        row = {"question": qid, "kind": q["kind"], "predictions": len(preds),
               "measured": true, "revealed by": len(q["values"])}
        if q["kind"] == "number":
            s = pd.Series(preds, dtype=float)
            row.update({"median prediction": s.median(), "min": s.min(), "max": s.max(),
                        "right": (None if true is None else
                                                int((abs(s - true) <= 0.1 * abs(true)).sum()))})
        else:
            counts = Counter(preds)
            row["counts"] = "; ".join(f"{c}: {counts.get(c, 0)}" for c in q["choices"])
            row["right"] = None if true is None else counts.get(true, 0)
        rows.append(row)
    return pd.DataFrame(rows).set_index("question")


def plot_question(q: dict):
    """One figure for question ``q`` (an entry of ``collect``): a histogram of the class's numeric
    predictions or a bar per choice, the measured value marked (a vertical line / a hatched bar)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    preds, true = list(q["predictions"].values()), _measured(q)
    if q["kind"] == "number":
        ax.hist(preds, bins=min(20, max(5, len(preds))), color="#0173b2", edgecolor="white",
                label="predictions")
        if true is not None:
            ax.axvline(true, color="#d55e00", lw=2.5, label=f"measured: {true:.4g}")
        ax.set_xlabel("predicted value")
    else:
        counts = [sum(p == c for p in preds) for c in q["choices"]]
        bars = ax.bar(range(len(counts)), counts, color="#0173b2", label="predictions")
        ax.set_xticks(range(len(counts)), q["choices"])
        if true is not None:
            i = q["choices"].index(true)
            bars[i].set_color("#d55e00")
            bars[i].set_label(f"measured: {true}")
        ax.set_xlabel("choice")
    ax.set_ylabel("students (count)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"[{q['qid']}] {q['prompt']}", wrap=True, fontsize="medium")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def report(paths: Sequence, out=None):
    """The class-wide report: (table, {qid: figure}); with ``out`` (a folder) each figure is also
    saved there as ``<qid>.png`` and the table as ``predictions.csv``."""
    questions = collect(paths)
    table = _table(questions)
    figures = {qid: plot_question(q) for qid, q in questions.items()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for qid, fig in figures.items():
            with atomic_path(out / f"{qid}.png") as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        atomic_write_text(out / "predictions.csv", table.to_csv())
    return table, figures


def main(argv=None) -> int:
    """python -m sparsevd_lab.predictions report FILES... [--out DIR]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sparsevd_lab.predictions",
                                     description="The class's predictions, one figure per question.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="a table and one figure per question from students' files")
    r.add_argument("files", nargs="+", help="the students' predictions.json files")
    r.add_argument("--out", default="predictions_report",
                   help="folder for the figures and the table (default: predictions_report)")
    args = parser.parse_args(argv)
    try:
        table, figures = report(args.files, args.out)
    except (PredictionFileError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string())
    for qid in figures:
        print(f"wrote {Path(args.out) / (qid + '.png')}")
    print(f"wrote {Path(args.out) / 'predictions.csv'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
