"""Tests of sparsevd_lab.checks.nb02 (notebook 02's exercises): each check accepts the right answer,
prints an OK line, runs fast, and rejects each known wrong answer with a message that names the
mistake."""
import math
import time

import numpy as np
import pytest
from scipy import integrate, optimize, special
from scipy.stats import norm

from sparsevd_lab import checks, theory
from sparsevd_lab.checks import CheckFailed


def mc(log_alpha, n_samples, seed, transform=None, mean=1.0, std_power=0.5, half_log=True,
       absolute=True):
    """A student's Monte Carlo estimator, with switches for the known mistakes."""
    z = np.random.default_rng(seed).standard_normal(n_samples)
    out = []
    for la in np.asarray(log_alpha, dtype=float):
        eps = mean + np.exp(std_power * la) * z
        with np.errstate(invalid="ignore"):
            log_eps = np.log(np.abs(eps)) if absolute else np.log(eps)
        out.append((0.5 * la if half_log else 0.0) - log_eps.mean())
    out = np.array(out)
    return transform(out) if transform else out


def eq14(la, k1, k2, k3):
    return k1 * special.expit(k2 + k3 * la) - 0.5 * np.log1p(np.exp(-la)) - k1


def refit(la, target, model=eq14, x0=(0.6, 2.0, 1.5)):
    res = optimize.minimize(lambda k: np.mean((model(la, *k) - target) ** 2), x0,
                            method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-8,
                                                           "fatol": 1e-14})
    return tuple(res.x)


def limit_quad():
    # -E log|z| = -2 * integral over z > 0 (symmetric); split at 1 for the log singularity at 0
    f = lambda z: -np.log(z) * norm.pdf(z)  # noqa: E731
    return 2 * (integrate.quad(f, 0, 1)[0] + integrate.quad(f, 1, np.inf)[0])


RIGHT = [
    (checks.check_mc_neg_kl, mc, "OK: mc_neg_kl"),
    (checks.check_mc_neg_kl, lambda la, n, s: theory.neg_kl_mc(la, n, s) + theory.KL_LIMIT,
     "OK: mc_neg_kl"),
    (checks.check_neg_kl_eq14, eq14, "OK: neg_kl_eq14"),
    (checks.check_refit, refit, "OK: refit"),
    (checks.check_refit, lambda la, t: theory.fit_kl_constants(la, t), "OK: refit"),
    (checks.check_kl_limit, lambda: (np.euler_gamma + math.log(2)) / 2, "OK: kl_limit"),
    (checks.check_kl_limit, limit_quad, "OK: kl_limit"),
]


@pytest.mark.parametrize("check,fn,line", RIGHT, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(RIGHT)])
def test_check_accepts_right_answer_fast_and_prints_ok(check, fn, line, capsys):
    start = time.process_time()
    check(fn)
    assert time.process_time() - start < 10.0
    out = capsys.readouterr().out
    assert out.startswith(line) and out.count("\n") == 1


def unseeded_mc(la, n, seed):
    return mc(la, n, int(np.random.randint(1 << 30)))


def fresh_draws_mc(log_alpha, n_samples, seed):
    """A student's estimator that is right on average but draws new eps for every alpha."""
    rng = np.random.default_rng(seed)
    out = []
    for la in np.asarray(log_alpha, dtype=float):
        eps = 1.0 + np.exp(0.5 * la) * rng.standard_normal(n_samples)
        out.append(0.5 * la - np.log(np.abs(eps)).mean())
    return np.array(out)


WRONG = [
    # Monte Carlo estimator of -KL
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s, half_log=False), "0.5 log alpha term"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s, absolute=False), "log|eps|"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s, transform=np.negative), "sign flipped"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s, std_power=1.0), "N(1, alpha^2)"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s, mean=0.0), "without the mean 1"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s) - theory.PAPER_K[0], "without C"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, s) - theory.KL_LIMIT, "without C"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, 50, s), "standard errors"),
    (checks.check_mc_neg_kl, unseeded_mc, "same seed gave different"),
    (checks.check_mc_neg_kl, lambda la, n, s: mc(la, n, 7), "ignore the `seed`"),
    (checks.check_mc_neg_kl, fresh_draws_mc, "fresh random draws for each alpha"),
    # eq. 14
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: eq14(la, k1, k2, k3) + 2 * k1, "C = +k1"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: eq14(la, k1, k2, k3) + k1, "no constant C"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: -eq14(la, k1, k2, k3), "+KL"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: k1 * special.expit(k2 + k3 * la)
     - 0.5 * np.log1p(np.exp(la)) - k1, "log(1 + alpha)"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: k1 * special.expit(k2 + k3 * la)
     - np.log1p(np.exp(-la)) - k1, "factor 0.5"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: k1 * special.expit(k2 + k3 * np.exp(la))
     - 0.5 * np.log1p(np.exp(-la)) - k1, "not alpha"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: -k1 * special.expit(k2 + k3 * la)
     - 0.5 * np.log1p(np.exp(-la)) - k1, "plus sign"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: k1 * special.expit(k2 - k3 * la)
     - 0.5 * np.log1p(np.exp(-la)) - k1, "sign inside"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: eq14(la, *theory.PAPER_K), "not the paper"),
    (checks.check_neg_kl_eq14, lambda la, k1, k2, k3: eq14(la, k1, k2, k3) + 0.01 * la,
     "term by term"),
    # refit
    (checks.check_refit, lambda la, t: theory.PAPER_K, "paper's constants"),
    (checks.check_refit, lambda la, t: refit(la, t, model=lambda x, k1, k2, k3: -k1 * special.expit(
        k2 + k3 * x) - 0.5 * np.log1p(np.exp(-x)) + k1, x0=(-0.6, 2.0, 1.5)), "k1 has the wrong sign"),
    (checks.check_refit, lambda la, t: refit(la, -t), "+KL"),
    (checks.check_refit, lambda la, t: refit(la, t, model=lambda x, k1, k2, k3: eq14(x, k1, k2, k3)
                                             + 2 * k1), "C = +k1"),
    (checks.check_refit, lambda la, t: refit(la, t, model=lambda x, k1, k2, k3: k1 * special.expit(
        k2 + k3 * x) - k1), "0.5 log(1 + 1/alpha)"),
    (checks.check_refit, lambda la, t: (0.63, 1.9, 1.5), "off the least-squares fit"),
    (checks.check_refit, lambda la, t: theory.fit_kl_constants(la, theory.neg_kl_exact(la)), "made exactly from"),
    (checks.check_refit, lambda la, t: (0.63, 1.9), "three constants"),
    # the large-alpha limit
    (checks.check_kl_limit, lambda: theory.PAPER_K[0], "fitted k1"),
    (checks.check_kl_limit, lambda: -theory.KL_LIMIT, "minus sign"),
    (checks.check_kl_limit, lambda: np.euler_gamma + math.log(2), "factor 1/2"),
    (checks.check_kl_limit, lambda: (np.euler_gamma - math.log(2)) / 2, "(gamma - log 2)/2"),
    (checks.check_kl_limit, lambda: np.euler_gamma / 2, "without log 2"),
    (checks.check_kl_limit, lambda: float(mc([20.0], 20_000, 0)[0]), "Monte Carlo"),
    (checks.check_kl_limit, lambda: 0.5, "not the limit"),
    (checks.check_kl_limit, lambda: round((np.euler_gamma + math.log(2)) / 2, 3), "rounded to 3 decimals"),
    (checks.check_kl_limit, lambda: 0.635, "rounded to 3 decimals"),
    (checks.check_kl_limit, lambda: 0.64, "rounded to 2 decimals"),
    (checks.check_kl_limit, lambda: 0.6351, "cut after 4 decimals"),
]


@pytest.mark.parametrize("check,fn,fragment", WRONG, ids=[f"{c.__name__}-{f}" for c, _, f in WRONG])
def test_check_rejects_known_wrong_answer_by_name(check, fn, fragment, capsys):
    start = time.process_time()
    with pytest.raises(CheckFailed) as err:
        check(fn)
    assert time.process_time() - start < 10.0
    assert fragment in str(err.value), str(err.value)
    assert "OK:" not in capsys.readouterr().out


@pytest.mark.parametrize("check", [checks.check_mc_neg_kl, checks.check_neg_kl_eq14,
                                   checks.check_refit, checks.check_kl_limit])
def test_unfilled_stub_and_missing_return_are_reported(check):
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        check(stub)
    with pytest.raises(CheckFailed, match="return"):
        check(lambda *args: None)


@pytest.mark.parametrize("name,functions", [
    ("01_log_uniform_prior", {"log_uniform_share", "dropout_rate", "sign_flip_rate",
                              "sign_flip_probability"}),
    ("02_kl_approximation", {"mc_neg_kl", "neg_kl_eq14", "refit_k", "kl_limit"}),
    ("03_sparse_vd_layers", {"theta_gradients", "preactivation_moments", "kl_share", "compression"}),
    ("04_weight_visualisation", {"kl_gradient", "pixels_used", "alive_units"}),
    ("05_random_labels", {"chance_accuracy", "constant_prediction"}),
    ("06_compression_tables", {"pareto_frontier", "frontier_point", "csr_bytes"}),
])
def test_notebook_exercises_have_markers_and_checks(name, functions):
    """Every lecture notebook (the lecture copies these checks serve): each exercise function is in a
    solution region followed by its check, and the student copy (regions stripped) is valid Python
    that defines the same functions, each now raising NotImplementedError."""
    import ast
    from pathlib import Path

    import jupytext

    from sparsevd_lab.assignments import BEGIN, strip_solutions

    nbk = jupytext.read(Path(__file__).parent.parent / "notebooks" / f"{name}.py")
    cells = [c.source for c in nbk.cells if c.cell_type == "code"]
    defined, checked = set(), set()
    for i, src in enumerate(cells):
        if BEGIN not in src:
            continue
        student = strip_solutions(src)
        tree = ast.parse(student)  # valid Python after stripping
        fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert all(any(isinstance(s, ast.Raise) for s in ast.walk(f)) for f in fns)
        defined |= {f.name for f in fns}
        following = cells[i + 1]
        checked |= {f.name for f in fns if "checks.check_" in following and f"({f.name})" in following}
    assert defined == functions
    assert checked == functions
