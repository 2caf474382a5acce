"""Tests of sparsevd_lab.theory: priors, dropout rate, exact / MC / sigmoid KL, refit, LRT."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from sparsevd_lab import kl_approx, theory


def _quad_neg_kl(la):
    s = math.exp(la / 2)
    f = lambda e: np.log(abs(1 + s * e)) * np.exp(-e * e / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    val = (integrate.quad(f, -np.inf, -1 / s, limit=200)[0]
           + integrate.quad(f, -1 / s, np.inf, limit=200)[0])
    return 0.5 * la - val - theory.KL_LIMIT


def test_densities_and_impropriety():
    w = np.array([-2.0, -0.5, 0.5, 2.0])
    assert np.allclose(theory.log_uniform_density(w), 1 / np.abs(w))
    assert np.isinf(theory.log_uniform_density(0.0))
    assert theory.gaussian_density(0.0) == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert theory.laplace_density(0.0, b=2.0) == pytest.approx(0.25)
    # each decade carries the same mass under 1/|w|
    a = integrate.quad(theory.log_uniform_density, 1e-3, 1e-2)[0]
    b = integrate.quad(theory.log_uniform_density, 1.0, 10.0)[0]
    assert a == pytest.approx(b) == pytest.approx(math.log(10))


def test_dropout_rate_and_std():
    assert np.allclose(theory.dropout_rate([0.0, 1.0, 20.0]), [0.0, 0.5, 20 / 21])
    with pytest.raises(ValueError):
        theory.dropout_rate(-1.0)
    assert theory.posterior_std(-2.0, 4.0) == pytest.approx(4.0)


@pytest.mark.parametrize("la", [-10.0, -3.0, 0.0, 2.0, 8.0])
def test_neg_kl_exact_matches_quadrature(la):
    assert theory.neg_kl_exact(la)[0] == pytest.approx(_quad_neg_kl(la), abs=1e-4)


def test_neg_kl_exact_reference_values_and_limit():
    kl = -theory.neg_kl_exact([-10.0, -5.0, 0.0, 3.0, 30.0])
    assert np.allclose(kl[:4], [5.635, 3.132, 0.427, 0.0247], atol=2e-3)
    assert abs(kl[4]) < 1e-6  # -> 0 as alpha -> inf with C = -(gamma + log 2) / 2
    assert theory.KL_LIMIT == pytest.approx(0.6352, abs=1e-4)
    assert np.isfinite(theory.neg_kl_exact(-25.0)).all()  # asymptotic branch
    with pytest.raises(ValueError):
        theory.neg_kl_exact(np.inf)


def test_neg_kl_mc_is_reproducible_and_close():
    grid = np.linspace(-6, 6, 25)
    a = theory.neg_kl_mc(grid, n_samples=20_000, seed=3)
    b = theory.neg_kl_mc(grid, n_samples=20_000, seed=3)
    assert np.array_equal(a, b)
    assert np.abs(a - theory.neg_kl_exact(grid)).max() < 0.03
    with pytest.raises(ValueError):
        theory.neg_kl_mc(grid, n_samples=1)


def test_neg_kl_sigmoid_equals_package_kl_approx():
    grid = np.linspace(-12, 12, 49)
    pkg = -kl_approx(torch.tensor(grid, dtype=torch.float64)).numpy()
    assert np.allclose(theory.neg_kl_sigmoid(grid), pkg, atol=1e-10)
    assert np.abs(theory.neg_kl_sigmoid(grid) - theory.neg_kl_exact(grid)).max() < 0.011


def test_fit_kl_constants_recovers_known_constants():
    grid = np.linspace(-10, 10, 101)
    target = theory.neg_kl_sigmoid(grid, (0.64, 1.9, 1.5))
    k = theory.fit_kl_constants(grid, target)
    assert np.allclose(k, (0.64, 1.9, 1.5), atol=1e-3)
    k_exact = theory.fit_kl_constants(grid, theory.neg_kl_exact(grid))
    assert np.allclose(k_exact, theory.PAPER_K, atol=0.05)
    with pytest.raises(ValueError):
        theory.fit_kl_constants(grid, target[:-1])


def test_lrt_moments_agree():
    torch.manual_seed(0)
    x = torch.randn(3, 20)
    w = torch.randn(4, 20) * 0.3
    ls2 = torch.full((4, 20), -3.0)
    df = theory.lrt_moments(x, w, ls2, n_samples=20_000, seed=0)
    assert list(df.index) == [0, 1, 2, 3]
    assert np.allclose(df["mean (weight sampling)"], df["mean (analytic)"], atol=0.03)
    assert np.allclose(df["mean (LRT)"], df["mean (analytic)"], atol=0.03)
    assert np.allclose(df["var (LRT)"], df["var (analytic)"], rtol=0.05)
    assert np.allclose(df["var (weight sampling)"], df["var (analytic)"], rtol=0.05)


def test_gradient_variance_shared_sample_is_worst():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 30, generator=g)
    y = torch.randint(0, 5, (64,), generator=g)
    w = torch.randn(5, 30, generator=g) * 0.3
    ls2 = torch.log(w ** 2) + math.log(0.5)  # alpha = 0.5 everywhere
    df = theory.gradient_variance(x, y, w, ls2, n_repeats=60, seed=0)
    assert df.index[0] == "local reparameterisation"
    assert df.loc["weight sample shared by the batch", "grad variance, theta"] > \
        df.loc["local reparameterisation", "grad variance, theta"]
    assert df["relative to LRT (theta)"].iloc[0] == pytest.approx(1.0)
