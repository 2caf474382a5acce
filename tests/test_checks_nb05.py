"""Tests of sparsevd_lab.checks.nb05 (notebook 05's exercises): each check accepts the right answer,
prints one OK line, runs fast, and rejects each known wrong answer with a message that names the
mistake."""
import math
import time

import numpy as np
import pytest
import torch

from sparsevd_lab import checks
from sparsevd_lab.checks import CheckFailed


def right_chance(pred_counts, label_counts):
    p = np.asarray(pred_counts, float)
    q = np.asarray(label_counts, float)
    return float((p / p.sum()) @ (q / q.sum()))


def right_constant(y_train, n_classes):
    share = np.bincount(y_train, minlength=n_classes) / len(y_train)
    nz = share[share > 0]
    return int(share.argmax()), float(share.max()), float(-(nz * np.log(nz)).sum())


def torch_constant(y_train, n_classes):
    y = torch.as_tensor(y_train)
    share = torch.bincount(y, minlength=n_classes).double() / len(y)
    logits = torch.log(share.clamp_min(1e-300))  # the best output: softmax(logits) = share
    loss = torch.nn.functional.cross_entropy(logits.expand(len(y), -1), y)
    return share.argmax(), share.max(), loss


RIGHT = [
    (checks.check_chance_level, right_chance, "OK: chance_accuracy"),
    (checks.check_chance_level,
     lambda p, q: float(torch.dot(torch.as_tensor(p, dtype=torch.float64) / sum(p),
                                  torch.as_tensor(q, dtype=torch.float64) / sum(q))), "OK: chance_accuracy"),
    (checks.check_random_labels_prediction, right_constant, "OK: constant_prediction"),
    (checks.check_random_labels_prediction, torch_constant, "OK: constant_prediction"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


def _shares(c):
    c = np.asarray(c, float)
    return c / c.sum()


def _const(f):
    """A wrong constant predictor: the right answer with one part replaced by f(share, right)."""
    def fn(y, k):
        share = np.bincount(y, minlength=k) / len(y)
        right = list(right_constant(y, k))
        return f(share, right, k, len(y))
    return fn


WRONG = [
    (checks.check_chance_level, lambda p, q: 1 / len(q), "1 / K"),
    (checks.check_chance_level, lambda p, q: max(q) / sum(q), "majority baseline"),
    (checks.check_chance_level, lambda p, q: float(np.mean(_shares(p) * _shares(q))), "do not average"),
    (checks.check_chance_level, lambda p, q: float(np.minimum(_shares(p), _shares(q)).sum()), "overlap"),
    (checks.check_chance_level, lambda p, q: float(np.dot(p, q)), "products of counts"),
    (checks.check_chance_level, lambda p, q: float(np.dot(p, _shares(q))), "normalise both"),
    (checks.check_chance_level, lambda p, q: float(_shares(q) @ _shares(q)), "followed the labels"),
    (checks.check_chance_level, lambda p, q: 0.5 * right_chance(p, q), "P(prediction = label)"),
    (checks.check_random_labels_prediction,
     _const(lambda s, r, k, n: (int(s.argmin()), s.min(), r[2])), "least frequent"),
    (checks.check_random_labels_prediction,
     _const(lambda s, r, k, n: ((r[0] + 1) % k, r[1], r[2])), "expected"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], 1 / k, r[2])), "chance level"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], s.max() * n, r[2])),
     "a count"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], 100 * r[1], r[2])),
     "percentage"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], r[1], math.log(k))), "log K"),
    (checks.check_random_labels_prediction,
     _const(lambda s, r, k, n: (r[0], r[1], r[2] / math.log(2))), "bits"),
    (checks.check_random_labels_prediction,
     _const(lambda s, r, k, n: (r[0], r[1], -math.log(r[1]))), "most frequent class only"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], r[1], 1 - r[1])),
     "error rate"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], r[1], -r[2])),
     "sign flipped"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], r[1], 0.5 * r[2])),
     "Gibbs"),
    (checks.check_random_labels_prediction, _const(lambda s, r, k, n: (r[0], r[1])), "three results"),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    with pytest.raises(CheckFailed) as err:
        check(fn)
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


@pytest.mark.parametrize("check", [checks.check_chance_level, checks.check_random_labels_prediction])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)


def test_the_ok_line_matches_the_uniform_entropy(capsys):
    checks.check_random_labels_prediction(right_constant)
    out = capsys.readouterr().out
    loss = float(out.split("train_loss ")[1].split(" nats")[0])
    assert loss == pytest.approx(math.log(10), abs=0.01) and loss < math.log(10)
