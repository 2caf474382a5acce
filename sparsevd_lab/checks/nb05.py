"""Checks for notebook 05 (random labels): one per exercise.

- ``check_chance_level``: the accuracy expected of predictions made independently of the true
  labels, from the class counts of both (what "at chance" means when the classes are not balanced).
- ``check_random_labels_prediction``: what a network that has dropped every weight predicts after
  training on random labels: the constant output that minimises the training cross-entropy (the
  label frequencies), its class, training accuracy and training loss.

Each runs on fixed counts and labels in well under a second, names the known wrong answers, and
prints one line starting with ``OK:``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .common import _call, _fail, _ok
from .nb01 import _as_number, _match

__all__ = ["check_chance_level", "check_random_labels_prediction"]


# --------------------------------------------------------------------------------------------------
# Exercise 1: the chance level
# --------------------------------------------------------------------------------------------------

# (prediction counts, label counts) per class: balanced, a constant predictor, uneven both
_CHANCE_CASES = [
    ([100] * 10, [100] * 10),
    ([0, 0, 0, 1000, 0, 0, 0, 0, 0, 0], [80, 120, 90, 150, 100, 100, 60, 100, 100, 100]),
    ([300, 100, 600], [500, 300, 200]),
    ([10, 30, 20, 40], [40, 10, 30, 20]),
]


def _shares(counts):
    c = np.asarray(counts, dtype=float)
    return c / c.sum()


def check_chance_level(fn: Callable) -> None:
    """``fn(pred_counts, label_counts)`` must return the expected accuracy of predictions that are
    independent of the true labels, given how often each class is predicted (``pred_counts[k]``) and
    how often it is the true label (``label_counts[k]``): the probability that a prediction and a
    label drawn independently from these shares agree."""
    what = "chance_accuracy"
    got = np.array([_as_number(what, _call(what, fn, np.array(p), np.array(q)))
                    for p, q in _CHANCE_CASES])
    expected = np.array([float(_shares(p) @ _shares(q)) for p, q in _CHANCE_CASES])
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-9):
        def per_case(f):
            return np.array([f(np.asarray(p, float), np.asarray(q, float)) for p, q in _CHANCE_CASES])
        wrong = {
            "1 / K, the chance level of balanced classes: a constant or uneven predictor scores the "
            "share of the classes it predicts": per_case(lambda p, q: 1 / len(q)),
            "the share of the most frequent true class, the majority baseline: that is the best a "
            "constant can do, not what independent predictions score": per_case(
                lambda p, q: q.max() / q.sum()),
            "the mean over classes of p_k q_k: sum over the classes, do not average":
                per_case(lambda p, q: np.mean(_shares(p) * _shares(q))),
            "the sum of min(p_k, q_k), the overlap of the two distributions: the prediction and the "
            "label are independent, so multiply": per_case(lambda p, q: np.minimum(
                _shares(p), _shares(q)).sum()),
            "a sum of products of counts: turn the counts into shares first": per_case(
                lambda p, q: float(p @ q)),
            "a sum of counts times shares: normalise both counts": per_case(
                lambda p, q: max(float(p @ _shares(q)), float(_shares(p) @ q))),
            "sum of q_k^2, as if the predictions followed the labels' shares": per_case(
                lambda p, q: float(_shares(q) @ _shares(q))),
        }
        hit = _match(got, wrong)
        if hit:
            _fail(what, f"you computed {hit}")
        i = int(np.nanargmax(np.abs(got - expected)))
        _fail(what, f"wrong value for predictions {list(_CHANCE_CASES[i][0])} and labels "
                    f"{list(_CHANCE_CASES[i][1])}: expected {expected[i]:.6g}, got {got[i]:.6g}. "
                    f"P(prediction = label) = sum over k of P(prediction = k) P(label = k)")
    _ok(what, f"= sum_k p_k q_k: 1 / K = {expected[0]:.2f} for balanced classes; a constant "
              f"prediction of class 3 scores that class's share, {expected[1]:.3f}")


# --------------------------------------------------------------------------------------------------
# Exercise 2: what a network with no weights predicts on random labels
# --------------------------------------------------------------------------------------------------

def _label_cases():
    rng = np.random.default_rng(5)
    return [(rng.integers(0, 10, 4000), 10),  # random labels, as the notebook draws them
            (rng.choice(4, 600, p=[0.1, 0.2, 0.6, 0.1]), 4),  # uneven
            (np.array([0, 1, 1, 2, 2, 2, 2, 2, 2, 2]), 5)]  # two classes never occur


def check_random_labels_prediction(fn: Callable) -> None:
    """``fn(y_train, n_classes)`` must return ``(predicted_class, train_acc, train_loss)`` of the best
    constant predictor for the labels ``y_train`` (an integer array with values in
    ``range(n_classes)``): the output p, the same for every input, that minimises the mean
    cross-entropy -mean log p[y] on ``y_train``; the class it predicts (its argmax), its training
    accuracy (a fraction) and its mean cross-entropy (nats)."""
    what = "constant_prediction"
    for y, k in _label_cases():
        out = _call(what, fn, y.copy(), k)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            _fail(what, "expected three results, (predicted_class, train_acc, train_loss), as a "
                        f"tuple; got {type(out).__name__}")
        cls = _as_number(f"{what} (predicted_class)", out[0])
        acc = _as_number(f"{what} (train_acc)", out[1])
        loss = _as_number(f"{what} (train_loss)", out[2])
        share = np.bincount(y, minlength=k) / len(y)
        right_cls, right_acc = int(np.argmax(share)), float(share.max())
        nz = share[share > 0]
        entropy = float(-(nz * np.log(nz)).sum())
        if cls != right_cls:
            if cls == int(np.argmin(share)):
                _fail(what, "predicted_class is the least frequent label: the best constant output "
                            "puts the most probability on the most frequent one")
            _fail(what, f"predicted_class {cls:g}, expected {right_cls} (counts per class "
                        f"{np.bincount(y, minlength=k).tolist()}): which class does the best constant "
                        f"output give the most probability?")
        if not math.isclose(acc, right_acc, rel_tol=1e-6):
            wrong = {"1 / K, the chance level: the constant always predicts the most frequent "
                     "training label, so it is right as often as that label occurs": 1.0 / k,
                     "a count, not a fraction: divide by the number of labels": share.max() * len(y),
                     "a percentage: give the accuracy as a fraction": 100 * right_acc}
            hit = _match(np.array(acc), wrong)
            _fail(what, f"train_acc: you computed {hit}" if hit else
                  f"train_acc {acc:.6g}, expected {right_acc:.6g}: the share of the training labels "
                  f"equal to the predicted class")
        if not math.isclose(loss, entropy, rel_tol=1e-6, abs_tol=1e-9):
            wrong = {
                "log K, the loss of the uniform output: the best constant output is the label "
                "frequencies, and its loss is their entropy (below log K when they are uneven)":
                    math.log(k),
                "the entropy in bits (log2): cross-entropy in PyTorch is in nats (natural log)":
                    entropy / math.log(2),
                "-log(max share), the loss on the most frequent class only: average -log p[y] over "
                "all the labels": -math.log(right_acc),
                "1 - train_acc, the error rate, not the cross-entropy": 1.0 - right_acc,
                "the entropy with the sign flipped": -entropy,
            }
            hit = _match(np.array(loss), wrong)
            _fail(what, f"train_loss: you computed {hit}" if hit else
                  f"train_loss {loss:.6g}, expected {entropy:.6g} nats: minimise -mean log p[y] over "
                  f"the probability vectors p (Gibbs' inequality)")
    y, _ = _label_cases()[0]
    share = np.bincount(y, minlength=10) / len(y)
    _ok(what, f"= (argmax of the label shares, the largest share, their entropy): on 4,000 uniform "
              f"random labels, train_acc {share.max():.3f} and train_loss "
              f"{float(-(share * np.log(share)).sum()):.4f} nats (log 10 = {math.log(10):.4f})")
