"""Tests of sparsevd_lab.predictions: record, reveal, bad predictions, the lecturer's report."""
import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sparsevd_lab import files, predictions  # noqa: E402
from sparsevd_lab.predictions import PredictionFileError, ask, reveal  # noqa: E402


@pytest.fixture
def pfile(tmp_path, monkeypatch):
    path = tmp_path / "alice.json"
    monkeypatch.setenv("SPARSEVD_PREDICTIONS", str(path))
    monkeypatch.delenv("SPARSEVD_STUDENT", raising=False)
    return path


def test_default_path_is_beside_the_notebook(monkeypatch):
    monkeypatch.delenv("SPARSEVD_PREDICTIONS", raising=False)
    assert str(predictions.predictions_path()) == "predictions.json"


def test_record_number_and_reveal(pfile, capsys):
    ask("01-flip", "Fraction of sign flips at alpha = 1?", prediction=0.3)
    out = capsys.readouterr().out
    assert "PREDICT [01-flip] Fraction of sign flips" in out and "recorded: 0.3" in out
    rec = json.loads(pfile.read_text())["questions"]["01-flip"]
    assert rec["prediction"] == 0.3 and rec["kind"] == "number" and rec["value"] is None
    assert rec["prompt"] == "Fraction of sign flips at alpha = 1?" and rec["predicted_at"]
    reveal("01-flip", np.float64(0.1587))
    out = capsys.readouterr().out
    assert "your prediction: 0.3" in out and "measured: 0.1587" in out
    assert "difference measured - predicted = -0.1413" in out
    rec = json.loads(pfile.read_text())["questions"]["01-flip"]
    assert rec["value"] == pytest.approx(0.1587) and rec["revealed_at"]


def test_record_choice_and_reveal(pfile, capsys):
    ask("05-dropout", "Does dropout stop memorisation?", kind="choice", choices=["yes", "no"],
        prediction="yes")
    reveal("05-dropout", "no")
    out = capsys.readouterr().out
    assert "choices: 'yes', 'no'" in out and "your prediction was not right" in out
    ask("05-kl", "Which wins?", kind="choice", choices=["data", "KL"], prediction="KL")
    reveal("05-kl", "KL")
    assert "your prediction was right" in capsys.readouterr().out


def test_no_prediction_records_nothing_and_says_where(pfile, capsys):
    ask("01-flip", "Fraction?", prediction=None)
    assert "write your prediction into prediction=..." in capsys.readouterr().out
    assert not pfile.exists()
    reveal("01-flip", 0.16)
    out = capsys.readouterr().out
    assert "measured: 0.16" in out and "no prediction recorded" in out
    assert not pfile.exists()  # a headless run (nbval, CI) leaves no file behind


def test_student_name_from_environment(pfile, monkeypatch):
    monkeypatch.setenv("SPARSEVD_STUDENT", "Alice Liddell")
    ask("q1", "?", prediction=1)
    assert json.loads(pfile.read_text())["student"] == "Alice Liddell"


@pytest.mark.parametrize("kind,choices,prediction,message", [
    ("number", None, "0.3", "without quotes"),
    ("number", None, float("nan"), "finite"),
    ("number", None, float("inf"), "finite"),
    ("number", None, True, "a number"),
    ("number", None, [0.3], "a number"),
    ("choice", ["yes", "no"], "Yes", r"one of \['yes', 'no'\]"),
    ("choice", ["yes", "no"], 1, "one of"),
])
def test_bad_predictions_rejected(pfile, kind, choices, prediction, message):
    with pytest.raises(ValueError, match=message):
        ask("q", "?", kind=kind, choices=choices, prediction=prediction)
    assert not pfile.exists()


@pytest.mark.parametrize("qid,kind,choices,message", [
    ("has space", "number", None, "question id"),
    ("", "number", None, "question id"),
    ("q", "text", None, "kind='text'"),
    ("q", "number", ["a", "b"], "takes no choices"),
    ("q", "choice", None, "needs choices"),
    ("q", "choice", ["a"], "needs choices"),
    ("q", "choice", ["a", "a"], "needs choices"),
])
def test_bad_questions_rejected(pfile, qid, kind, choices, message):
    with pytest.raises(ValueError, match=message):
        ask(qid, "?", kind=kind, choices=choices, prediction=None)


def test_bad_revealed_value(pfile):
    ask("q", "?", kind="choice", choices=["a", "b"], prediction="a")
    with pytest.raises(ValueError, match="the measured value must be one of"):
        reveal("q", "c")


def test_prediction_after_reveal_is_kept(pfile, capsys):
    ask("q", "?", prediction=2)
    reveal("q", 3)
    ask("q", "?", prediction=3)  # peeking: the first prediction stays
    assert "already revealed" in capsys.readouterr().out
    assert json.loads(pfile.read_text())["questions"]["q"]["prediction"] == 2
    ask("q", "?", prediction=2)  # re-running the notebook unchanged keeps the revealed value
    rec = json.loads(pfile.read_text())["questions"]["q"]
    assert rec["prediction"] == 2 and rec["value"] == 3


def test_write_is_atomic(pfile, monkeypatch):
    ask("q", "?", prediction=1.0)
    before = pfile.read_text()

    def boom(fh):
        fh.write("{half")
        raise OSError("disk full")

    real = files.atomic_write_text
    monkeypatch.setattr(predictions, "atomic_write_text",
                        lambda path, text: files.atomic_write(path, boom, mode="w"))
    with pytest.raises(OSError, match="disk full"):
        ask("q2", "?", prediction=2.0)
    assert pfile.read_text() == before  # the old file is intact, no half-written JSON
    assert [p.name for p in pfile.parent.iterdir()] == [pfile.name]  # no temporary left
    monkeypatch.setattr(predictions, "atomic_write_text", real)


def _class(tmp_path, monkeypatch):
    """Three students' files: numbers 0.1, 0.3, 0.35 for 01-flip (measured 0.16); choices."""
    paths = []
    for name, flip, drop in [("alice", 0.1, "yes"), ("bob", 0.3, "no"), ("carol", 0.35, "no")]:
        path = tmp_path / f"{name}.json"
        monkeypatch.setenv("SPARSEVD_PREDICTIONS", str(path))
        ask("01-flip", "Fraction of sign flips?", prediction=flip)
        reveal("01-flip", 0.16)
        ask("05-dropout", "Does dropout stop memorisation?", kind="choice",
            choices=["yes", "no", "partly"], prediction=drop)
        if name != "carol":  # carol never ran the reveal
            reveal("05-dropout", "no")
        paths.append(path)
    return paths


def test_report_from_three_files(tmp_path, monkeypatch):
    paths = _class(tmp_path, monkeypatch)
    table, figures = predictions.report(paths, tmp_path / "out")
    assert set(figures) == {"01-flip", "05-dropout"}
    flip = table.loc["01-flip"]
    assert flip["predictions"] == 3 and flip["measured"] == pytest.approx(0.16)
    assert flip["median prediction"] == pytest.approx(0.3) and flip["right"] == 0
    drop = table.loc["05-dropout"]
    assert drop["counts"] == "yes: 1; no: 2; partly: 0" and drop["right"] == 2
    assert drop["revealed by"] == 2 and drop["measured"] == "no"
    # the number figure: a histogram of three predictions, the measured value marked
    ax = figures["01-flip"].axes[0]
    assert sum(p.get_height() for p in ax.patches) == 3
    assert ax.lines[0].get_xdata()[0] == pytest.approx(0.16)
    assert "measured: 0.16" in [t.get_text() for t in ax.get_legend().get_texts()]
    # the choice figure: one bar per choice, the measured one in its own colour
    ax = figures["05-dropout"].axes[0]
    assert [p.get_height() for p in ax.patches] == [1, 2, 0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["yes", "no", "partly"]
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours[1] != colours[0] and colours[0] == colours[2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "01-flip.png", "05-dropout.png", "predictions.csv"]


def test_report_command(tmp_path, monkeypatch, capsys):
    paths = _class(tmp_path, monkeypatch)
    out = tmp_path / "rep"
    assert predictions.main(["report", *map(str, paths), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "01-flip" in text and "yes: 1; no: 2; partly: 0" in text
    assert (out / "01-flip.png").stat().st_size > 1000


def test_report_names_a_file_that_is_not_one(tmp_path, monkeypatch, capsys):
    paths = _class(tmp_path, monkeypatch)
    notes = tmp_path / "notes.json"
    notes.write_text('{"cells": []}')
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    for bad in (notes, garbage, tmp_path / "missing.json"):
        with pytest.raises(PredictionFileError, match=bad.name):
            predictions.report([*paths, bad])
        assert predictions.main(["report", str(paths[0]), str(bad), "--out", str(tmp_path)]) == 2
        assert bad.name in capsys.readouterr().err


def test_collect_and_load(tmp_path, monkeypatch):
    paths = _class(tmp_path, monkeypatch)
    q = predictions.collect(paths)["01-flip"]
    assert q["predictions"] == {"alice": 0.1, "bob": 0.3, "carol": 0.35}
    assert predictions.load(paths[0])["format"] == predictions.FORMAT
    with pytest.raises(ValueError, match="give one or more"):
        predictions.collect([])


def test_plot_question_without_a_reveal():
    fig = predictions.plot_question({"qid": "q", "prompt": "?", "kind": "number", "choices": None,
                                     "predictions": {"a": 1.0, "b": 2.0}, "values": []})
    ax = fig.axes[0]
    assert not ax.lines and ax.get_ylabel() == "students (count)"
