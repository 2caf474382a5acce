"""Tests of sparsevd_lab.checks: every check accepts the reference implementation of the package,
rejects the known wrong answers with a message that names the mistake, and runs in well under a second."""
import contextlib
import math
import time

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sparsevd_lab import checks, layers, reports
from sparsevd_lab.checks import CheckFailed
from sparsevd_lab.data import DataBundle
from sparsevd_lab.layers import LinearSVDO
from sparsevd_lab.models import lenet_300_100


# reference implementations, as a student would write them, on top of the package
def ref_log_alpha(theta, log_sigma2):
    return layers.compute_log_alpha(theta, log_sigma2)


def ref_lrt(x, theta, log_sigma2, bias):
    return layers.linear_svdo(x, theta, log_sigma2, bias, training=True)


def ref_eval(x, theta, log_sigma2, bias, threshold=3.0):
    return layers.linear_svdo(x, theta, log_sigma2, bias, training=False, threshold=threshold)


def ref_sgvlb(output, target, kl, train_size, kl_weight=1.0):
    return F.cross_entropy(output, target) + kl_weight * kl / train_size


def ref_compression(model, threshold=3.0):
    return reports.compression_ratio(model, threshold)


REFERENCE = [
    (checks.check_log_alpha, ref_log_alpha, "OK: log_alpha"),
    (checks.check_lrt_linear, ref_lrt, "OK: lrt_linear"),
    (checks.check_lrt_linear, layers.LinearSVDO, "OK: lrt_linear"),
    (checks.check_eval_mask, ref_eval, "OK: eval_linear"),
    (checks.check_eval_mask, layers.LinearSVDO, "OK: eval_linear"),
    (checks.check_kl, layers.kl_approx, "OK: kl_approx"),
    (checks.check_sgvlb, ref_sgvlb, "OK: sgvlb"),
    (checks.check_compression_ratio, ref_compression, "OK: compression_ratio"),
]


@pytest.mark.parametrize("check,fn,line", REFERENCE,
                         ids=[f"{c.__name__}-{getattr(f, '__name__', f)}" for c, f, _ in REFERENCE])
def test_check_accepts_reference_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()  # CPU time: wall time on shared CI cores says little
    check(fn)
    assert time.process_time() - start < 1.0
    assert capsys.readouterr().out.startswith(line)


def test_check_failed_is_an_assertion_error():
    assert issubclass(CheckFailed, AssertionError)


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_lrt_linear(ref_lrt)
    checks.check_compression_ratio(ref_compression)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------------------------
# known wrong answers, each with the words the student sees
# ---------------------------------------------------------------------------------------------

def lrt(mean_fn=None, var_fn=None, std_power=0.5, shared=False):
    def fn(x, theta, log_sigma2, bias):
        mu = F.linear(x, theta, bias) if mean_fn is None else mean_fn(x, theta, bias)
        var = F.linear(x * x, log_sigma2.exp()) if var_fn is None else var_fn(x, log_sigma2, bias)
        eps = torch.randn(1, mu.shape[1]) if shared else torch.randn_like(mu)
        return mu + var.clamp(min=1e-16) ** std_power * eps
    return fn


WRONG = [
    ("log(2|theta|)", checks.check_log_alpha,
     lambda t, s: s - torch.log(2 * t.abs()), r"log\(2\|theta\|\)"),
    ("log|theta|", checks.check_log_alpha,
     lambda t, s: s - torch.log(t.abs()), "square is missing"),
    ("log alpha sign", checks.check_log_alpha,
     lambda t, s: torch.log(t * t + 1e-8) - s, "sign is flipped"),
    ("no eps", checks.check_log_alpha,
     lambda t, s: s - torch.log(t * t), "theta = 0"),
    ("detached", checks.check_log_alpha,
     lambda t, s: (s - torch.log(t * t + 1e-8)).detach(), "no gradient"),
    ("in place", checks.check_log_alpha,
     lambda t, s: s - torch.log(t.detach().mul_(t.detach()).add_(1e-8)), "in place"),
    ("log alpha shape", checks.check_log_alpha,
     lambda t, s: (s - torch.log(t * t + 1e-8)).flatten(), "shape"),
    ("bias in the variance", checks.check_lrt_linear,
     lrt(var_fn=lambda x, ls, b: F.linear(x * x, ls.exp(), b)), "bias is inside the variance"),
    ("bias squared in the variance", checks.check_lrt_linear,
     lrt(var_fn=lambda x, ls, b: F.linear(x * x, ls.exp()) + b * b), "bias is inside the variance"),
    ("missing sqrt", checks.check_lrt_linear, lrt(std_power=1.0), "no square root"),
    ("noise shared by the batch", checks.check_lrt_linear, lrt(shared=True), "shared"),
    ("one weight sample for the batch", checks.check_lrt_linear,
     lambda x, t, ls, b: F.linear(x, t + (ls / 2).exp() * torch.randn_like(t), b), "shared"),
    ("no bias in the mean", checks.check_lrt_linear,
     lrt(mean_fn=lambda x, t, b: F.linear(x, t)), "off by exactly the bias"),
    ("x instead of x*x", checks.check_lrt_linear,
     lambda x, t, ls, b: F.linear(x, t, b) + F.linear(x, ls.exp()).sqrt() * torch.randn(len(x), len(t)),
     "NaN"),
    ("no reparameterisation", checks.check_lrt_linear,
     lambda x, t, ls, b: torch.normal(F.linear(x, t, b).detach(),
                                      F.linear(x * x, ls.exp()).sqrt().detach()), "no gradient"),
    ("inverted mask", checks.check_eval_mask,
     lambda x, t, ls, b, th=3.0: F.linear(x, t * (layers.compute_log_alpha(t, ls) >= th), b), "inverted"),
    ("no mask", checks.check_eval_mask, lambda x, t, ls, b, th=3.0: F.linear(x, t, b), "nothing is masked"),
    ("noisy eval", checks.check_eval_mask, lambda x, t, ls, b, th=3.0: ref_lrt(x, t, ls, b), "deterministic"),
    ("threshold ignored", checks.check_eval_mask,
     lambda x, t, ls, b, th=3.0: ref_eval(x, t, ls, b, 3.0), "threshold"),
    ("alpha not log alpha", checks.check_eval_mask,
     lambda x, t, ls, b, th=3.0: F.linear(x, t * (layers.compute_log_alpha(t, ls).exp() < th), b),
     "not log alpha"),
    ("KL sign flipped", checks.check_kl, lambda la: -layers.kl_approx(la), "sign is flipped"),
    ("KL summed", checks.check_kl, lambda la: layers.kl_approx(la).sum(), "elementwise"),
    ("KL without k1", checks.check_kl,
     lambda la: -layers.K1 * torch.sigmoid(layers.K2 + layers.K3 * la) + 0.5 * F.softplus(-la),
     "constant k1"),
    ("KL log1p(alpha)", checks.check_kl,
     lambda la: layers.K1 - layers.K1 * torch.sigmoid(layers.K2 + layers.K3 * la)
     + 0.5 * F.softplus(la), r"log1p\(alpha\)"),
    ("KL numpy", checks.check_kl, lambda la: layers.kl_approx(la).detach().numpy(), "torch.Tensor"),
    ("KL not divided by train_size", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: F.cross_entropy(o, t) + w * kl, "train_size is missing"),
    ("data term not scaled by train_size", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: n * F.cross_entropy(o, t) + w * kl / n, "multiplied by train_size"),
    ("SGVLB sign", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: -(F.cross_entropy(o, t) + w * kl / n), "sign is flipped"),
    ("summed data term", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: F.cross_entropy(o, t, reduction="sum") + w * kl / n, "MEAN"),
    ("divided by the number of batches", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: F.cross_entropy(o, t) + w * kl / (n / len(t)), "number of batches"),
    ("kl_weight ignored", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: F.cross_entropy(o, t) + kl / n, "kl_weight is ignored"),
    ("N times too large", checks.check_sgvlb,
     lambda o, t, kl, n, w=1.0: n * F.cross_entropy(o, t) + w * kl, "train_size times"),
    ("no return", checks.check_sgvlb, lambda o, t, kl, n, w=1.0: None, "return"),
    ("inverse ratio", checks.check_compression_ratio,
     lambda m, th=3.0: 1 / reports.compression_ratio(m, th), "inverse"),
    ("threshold ignored in the ratio", checks.check_compression_ratio,
     lambda m, th=3.0: reports.compression_ratio(m, 3.0), "threshold"),
    ("biases counted", checks.check_compression_ratio,
     lambda m, th=3.0: (sum(x.numel() for n_, x in m.named_parameters() if "log_sigma2" not in n_
                            and not n_.startswith("4"))
                        / (sum(k for _, _, k in reports.layer_sparsity(m, th)) + 8)), "biases"),
    ("per-layer average", checks.check_compression_ratio,
     lambda m, th=3.0: sum(n_ / k for _, n_, k in reports.layer_sparsity(m, th)) / 2, "averaged"),
    ("sparsity instead", checks.check_compression_ratio,
     lambda m, th=3.0: 1 - 1 / reports.compression_ratio(m, th), "sparsity"),
    ("bad signature", checks.check_compression_ratio, lambda m: 1.0, "signature"),
]


@pytest.mark.parametrize("name,check,fn,message", WRONG, ids=[w[0] for w in WRONG])
def test_check_rejects_known_wrong_answer(name, check, fn, message):
    with pytest.raises(CheckFailed, match=message):
        check(fn)


def test_compression_ratio_must_return_inf_when_all_dropped():
    def no_inf(m, th=3.0):
        rows = reports.layer_sparsity(m, th)
        return sum(r[1] for r in rows) / sum(r[2] for r in rows)

    with pytest.raises(CheckFailed, match="inf"):
        checks.check_compression_ratio(no_inf)


@pytest.mark.parametrize("check", [checks.check_log_alpha, checks.check_lrt_linear,
                                   checks.check_eval_mask, checks.check_kl, checks.check_sgvlb,
                                   checks.check_compression_ratio])
def test_unfilled_stub_reports_not_implemented(check):
    def stub(*args, **kwargs):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)


def test_type_error_inside_the_students_code_is_not_blamed_on_the_signature():
    def buggy(theta, log_sigma2):
        return log_sigma2 - torch.log(theta * theta, "oops")

    with pytest.raises(TypeError, match="log"):
        checks.check_log_alpha(buggy)


def test_layer_class_without_the_parameter_names_is_explained():
    class Renamed(torch.nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.zeros(n_out, n_in))

    with pytest.raises(CheckFailed, match="parameter named `weight`"):
        checks.check_lrt_linear(Renamed)


# ---------------------------------------------------------------------------------------------
# check_training_outcome
# ---------------------------------------------------------------------------------------------

def test_training_outcome_thresholds_depend_on_the_mode(capsys):
    fast, default = checks.OUTCOME_THRESHOLDS["fast"], checks.OUTCOME_THRESHOLDS["default"]
    assert fast["test_acc"] < default["test_acc"] and fast["compression"] < default["compression"]
    modest = pd.DataFrame({"test_acc": [0.3, fast["test_acc"] + 0.01],
                           "compression": [1.0, fast["compression"] + 0.1]})
    got = checks.check_training_outcome(modest, "fast")
    assert got["test_acc"] == pytest.approx(fast["test_acc"] + 0.01)
    assert "OK: training" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="default mode"):
        checks.check_training_outcome(modest, "default")


@pytest.mark.parametrize("history", [
    [{"test_acc": 0.95, "compression": 40.0}],
    {"test_acc": [0.5, 0.95], "compression": [2.0, 40.0]},
    {"test_acc": 0.95, "compression": 40.0},
])
def test_training_outcome_accepts_lists_and_dicts(history):
    assert checks.check_training_outcome(history, "default") == {"test_acc": 0.95, "compression": 40.0}


def test_training_outcome_messages():
    with pytest.raises(CheckFailed, match="chance level"):
        checks.check_training_outcome({"test_acc": 0.1, "compression": 40.0}, "fast")
    with pytest.raises(CheckFailed, match="log_sigma2 in the optimiser"):
        checks.check_training_outcome({"test_acc": 0.99, "compression": 1.0}, "fast")
    with pytest.raises(CheckFailed, match="no `compression`"):
        checks.check_training_outcome({"test_acc": 0.99}, "fast")
    with pytest.raises(ValueError, match="mode"):
        checks.check_training_outcome({"test_acc": 0.99, "compression": 99}, "slow")


def test_training_outcome_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPARSEVD_FAST", "1")
    h = {"test_acc": 0.7, "compression": 2.0}
    checks.check_training_outcome(h)
    monkeypatch.setenv("SPARSEVD_FAST", "0")
    with pytest.raises(CheckFailed):
        checks.check_training_outcome(h)


def test_training_outcome_of_a_model():
    torch.manual_seed(0)
    model = lenet_300_100()
    x, y = torch.randn(50, 1, 28, 28), torch.randint(0, 10, (50,))
    data = DataBundle("toy", "random", x, y, x, y)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "log_sigma2"):
                m.log_sigma2.fill_(20.0)  # every weight dropped: constant output, infinite compression
    with pytest.raises(CheckFailed, match="test accuracy"):
        checks.check_training_outcome(model, "default", data=data)
    with pytest.raises(TypeError, match="data"):
        checks.check_training_outcome(model, "default")
    with pytest.raises(CheckFailed, match="no layer with a log_sigma2"):
        checks.check_training_outcome(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)),
                                      "fast", data=data)


def test_training_outcome_of_a_model_that_passes(monkeypatch):
    model = lenet_300_100()
    data = DataBundle("toy", "random", torch.zeros(10, 1, 28, 28), torch.zeros(10, dtype=torch.long),
                      torch.zeros(10, 1, 28, 28), torch.zeros(10, dtype=torch.long))
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "log_sigma2"):
                m.log_sigma2.fill_(20.0)
        model[-1].bias.copy_(torch.tensor([5.0] + [0.0] * 9))  # always class 0, all correct
    got = checks.check_training_outcome(model, "default", data=data)
    assert got["test_acc"] == 1.0 and math.isinf(got["compression"])


# ---------------------------------------------------------------------------------------------
# the all-zero input row (A1 exercise 2), the layer module (exercise 5), one training step (8)
# ---------------------------------------------------------------------------------------------

def test_lrt_without_a_floor_gives_nan_gradients_on_a_zero_row():
    def no_floor(x, theta, log_sigma2, bias):
        gamma = F.linear(x, theta, bias)
        delta = F.linear(x * x, log_sigma2.exp())
        return gamma + torch.sqrt(delta) * torch.randn_like(gamma)

    with pytest.raises(CheckFailed, match="all-zero input row"):
        checks.check_lrt_linear(no_floor)


class StudentLayer(torch.nn.Module):
    """A1's MyLinearSVDO as a student writes it; the switches make the known wrong answers."""
    init_weight = "kaiming"
    clamp = (None, None)  # the package's choice: log alpha unclamped
    clamp_log_sigma2 = False
    ls_init = None  # None: the argument
    as_parameter = True
    kl_reduce = "sum"
    kl_clamp = None  # a clamp applied in kl() only
    clamp_in_place = False
    keep_threshold = True

    def __init__(self, in_features, out_features, threshold=3.0, log_sigma2_init=-10.0):
        super().__init__()
        if self.keep_threshold:
            self.threshold = threshold
        w = torch.empty(out_features, in_features)
        if self.init_weight == "kaiming":
            torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        elif self.init_weight == "normal":
            torch.nn.init.normal_(w)
        elif self.init_weight == "tiny":
            torch.nn.init.normal_(w, std=1e-4)
        else:
            w.zero_()
        ls = torch.full((out_features, in_features),
                        log_sigma2_init if self.ls_init is None else self.ls_init)
        wrap = torch.nn.Parameter if self.as_parameter else (lambda t: t)
        self.weight, self.log_sigma2 = wrap(w), wrap(ls)
        self.bias = torch.nn.Parameter(torch.zeros(out_features))

    @property
    def log_alpha(self):
        if self.clamp_in_place:
            with torch.no_grad():
                self.log_sigma2.clamp_(-10, 10)
        ls = self.log_sigma2.clamp(-10, 10) if self.clamp_log_sigma2 else self.log_sigma2
        la = layers.compute_log_alpha(self.weight, ls)
        lo, hi = self.clamp
        return la.clamp(lo, hi) if lo is not None or hi is not None else la

    def forward(self, x):
        return layers.linear_svdo(x, self.weight, self.log_sigma2, self.bias,
                                  training=self.training, threshold=self.threshold)

    def kl(self):
        la = self.log_alpha if self.kl_clamp is None else self.log_alpha.clamp(*self.kl_clamp)
        k = layers.kl_approx(la)
        return {"sum": k.sum(), "mean": k.mean(), "neg": -k.sum()}[self.kl_reduce]


def variant(**attrs):
    return type("MyLinearSVDO", (StudentLayer,), attrs)


def test_check_layer_accepts_a_correct_layer(capsys):
    checks.check_layer(StudentLayer)
    assert capsys.readouterr().out.startswith("OK: StudentLayer")
    checks.check_lrt_linear(StudentLayer)
    checks.check_eval_mask(StudentLayer)


@pytest.mark.parametrize("attrs,message", [
    ({"init_weight": "zero"}, "start at 0"),
    ({"init_weight": "normal"}, "too large"),
    ({"init_weight": "tiny"}, "too small"),
    ({"ls_init": 0.0}, "sigma\\^2 = 1"),
    ({"ls_init": -10.0}, "log_sigma2_init argument is ignored"),
    ({"as_parameter": False}, "not an nn.Parameter"),
    ({"clamp": (-10.0, 10.0)}, "clamped to \\[-10, 10\\], as in the authors' code"),
    ({"clamp": (None, 10.0)}, "log_alpha stops at"),
    ({"clamp": (-10.0, None)}, "log_alpha stops at"),
    ({"clamp": (-20.0, 20.0)}, "something is clamped"),
    ({"clamp_log_sigma2": True}, "log_sigma2 is clamped to \\[-10, 10\\] before log alpha"),
    ({"clamp_in_place": True}, "in place"),
    ({"kl_clamp": (-10.0, 10.0)}, "kl\\(\\) uses log alpha clamped"),
    ({"kl_reduce": "mean"}, "mean over the weights"),
    ({"kl_reduce": "neg"}, "wrong sign"),
    ({"keep_threshold": False}, "self.threshold"),
])
def test_check_layer_rejects_known_wrong_answers(attrs, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_layer(variant(**attrs))


def test_check_layer_accepts_the_package_layer(capsys):
    """The package's own layer is a right answer to exercise 5: one story about the clamp."""
    checks.check_layer(LinearSVDO)
    assert capsys.readouterr().out.startswith("OK: LinearSVDO")


def test_check_layer_clamp_on_log_sigma2_is_caught_by_the_small_theta():
    """With theta = 1 a clamp on log_sigma2 and one on log alpha agree on [-10, 10]; the check's
    theta = 0.01 carries log alpha past 10 while log_sigma2 stays inside: it names the slip."""
    with pytest.raises(CheckFailed) as err:
        checks.check_layer(variant(clamp_log_sigma2=True))
    assert "that limits a parameter, not log alpha" in str(err.value)


def test_check_layer_needs_the_class():
    with pytest.raises(CheckFailed, match="class itself"):
        checks.check_layer(StudentLayer(3, 2))


def _student_model():
    return torch.nn.Sequential(torch.nn.Flatten(), StudentLayer(784, 30), torch.nn.ReLU(),
                               StudentLayer(30, 10))


def make_step(order=("zero_grad", "backward", "step"), kl=True, divide=True, use_weight=True,
              batch_divide=False, detach_kl=False, no_grad_kl=False):
    def step(model, optimizer, x, y, train_size, kl_weight):
        output = model(x)
        with torch.no_grad() if no_grad_kl else contextlib.nullcontext():
            total = sum(m.kl() for m in model.modules() if hasattr(m, "log_sigma2")) if kl else 0.0
        if detach_kl:
            total = total.detach()
        n = len(x) if batch_divide else train_size
        w = kl_weight if use_weight else 1.0
        loss = F.cross_entropy(output, y) + w * total / (n if divide else 1)
        for op in order:
            {"zero_grad": optimizer.zero_grad, "backward": loss.backward, "step": optimizer.step}[op]()
        return loss
    return step


def test_check_train_step_accepts_a_correct_step(capsys):
    start = time.perf_counter()
    checks.check_train_step(make_step(), _student_model)
    assert time.perf_counter() - start < 10
    assert capsys.readouterr().out.startswith("OK: train_step")
    checks.check_train_step(make_step(order=("backward", "step", "zero_grad")), _student_model)


@pytest.mark.parametrize("kwargs,message", [
    ({"order": ("zero_grad", "backward")}, "step\\(\\) is never called"),
    ({"order": ("zero_grad", "step")}, "backward\\(\\) is never called"),
    ({"order": ("backward", "step")}, "zero_grad\\(\\) is never called"),
    ({"order": ("backward", "zero_grad", "step")}, "wipes the gradients"),
    ({"order": ("zero_grad", "step", "backward")}, "before loss.backward"),
    ({"kl": False}, "no KL term"),
    ({"divide": False}, "not divided by train_size"),
    ({"batch_divide": True}, "batch size"),
    ({"use_weight": False}, "kl_weight argument"),
    ({"detach_kl": True}, "the KL's gradient does not reach log_sigma2"),
    ({"no_grad_kl": True}, "the KL's gradient does not reach log_sigma2"),
])
def test_check_train_step_rejects_known_wrong_answers(kwargs, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_train_step(make_step(**kwargs), _student_model)


def test_check_train_step_needs_a_sparse_vd_model():
    dense = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))  # noqa: E731
    with pytest.raises(CheckFailed, match="no layer with log_sigma2"):
        checks.check_train_step(make_step(), dense)
