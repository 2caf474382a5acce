import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate

from sparsevd_lab import Conv2dSVDO, LinearSVDO, conv2d_svdo, kl_approx, linear_svdo, svdo_layers
from sparsevd_lab.layers import K1, compute_log_alpha


def exact_kl(log_alpha: float) -> float:
    """KL(N(theta, alpha theta^2) || log-uniform) by numerical integration (paper sec. 4.2):
    -KL = 0.5 log alpha - E log|1 + sqrt(alpha) eps| + C, with C making KL -> 0 as alpha -> inf."""
    s = math.exp(0.5 * log_alpha)
    f = lambda e: math.exp(-0.5 * e * e) / math.sqrt(2 * math.pi) * math.log(abs(1 + s * e))  # noqa
    sing = -1.0 / s  # log singularity of the integrand: integrate up to it from each side
    lo, hi = min(-40.0, sing - 40.0), max(40.0, sing + 40.0)
    knots = [lo, sing - 1.0, sing, sing + 1.0, hi]
    e_log = sum(integrate.quad(f, a, b, epsabs=1e-10, limit=500)[0] for a, b in zip(knots, knots[1:]))
    c = -(np.euler_gamma + math.log(2)) / 2
    return -(0.5 * log_alpha - e_log + c)


@pytest.mark.parametrize("la", np.linspace(-10, 10, 41))
def test_kl_approx_matches_numerical_integration(la):
    approx = float(kl_approx(torch.tensor(la, dtype=torch.float64)))
    assert abs(approx - exact_kl(la)) < 0.01


def test_kl_approx_reference_values_and_monotone():
    la = torch.tensor([-10.0, -5.0, 0.0, 3.0, 8.0])
    kl = kl_approx(la)
    assert torch.allclose(kl, torch.tensor([5.64, 3.14, 0.43, 0.025, 0.0]), atol=0.01)
    grid = torch.linspace(-50, 50, 2001)
    vals = kl_approx(grid)
    assert torch.all(vals[1:] <= vals[:-1])


def test_kl_approx_stable_float32_extremes():
    la = torch.linspace(-50, 50, 10001, requires_grad=True)
    kl = kl_approx(la)
    assert torch.isfinite(kl).all() and (kl >= 0).all()
    kl.sum().backward()
    assert torch.isfinite(la.grad).all()
    # KL approaches 0 from above for large alpha, and the limit constant is (gamma + log 2)/2
    assert float(kl[-1].detach()) < 1e-6
    assert abs(K1 - (np.euler_gamma + math.log(2)) / 2) < 1e-3


def test_kl_approx_gradcheck():
    la = torch.linspace(-12, 12, 25, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(kl_approx, (la,))


def test_kl_approx_accepts_floats():
    assert float(kl_approx(0.0)) == pytest.approx(0.43, abs=0.01)


def test_log_alpha_is_two_log_abs_theta():
    w = torch.tensor([0.5, -2.0])
    ls2 = torch.tensor([-1.0, 0.0])
    # log alpha = log sigma^2 - 2 log|theta|, not log(2|theta|)
    assert torch.allclose(compute_log_alpha(w, ls2), ls2 - 2 * torch.log(w.abs()), atol=1e-6)


def _moments(samples):
    samples = samples.double()
    return samples.mean(0), samples.var(0)


def _assert_moments(mean, var, mu, true_var, n):
    # 5 standard errors: a correct estimator fails this with negligible probability (fixed seed)
    assert torch.all((mean - mu).abs() <= 5 * torch.sqrt(true_var / n) + 1e-6)
    assert torch.all((var / true_var - 1).abs() <= 5 * math.sqrt(2 / n) + 1e-6)


def test_linear_train_moments_match_weight_sampling():
    torch.manual_seed(0)
    n = 4000
    layer = LinearSVDO(6, 4)
    with torch.no_grad():
        layer.log_sigma2.uniform_(-4, -1)
    x = torch.randn(3, 6)
    w, b = layer.weight.detach(), layer.bias.detach()
    sigma2 = torch.exp(layer.log_sigma2.detach())
    mu = F.linear(x, w, b).double()
    true_var = F.linear(x * x, sigma2).double()
    with torch.no_grad():  # n draws of the LRT output for the same 3 inputs
        lrt = layer(x.expand(n, 3, 6))
    _assert_moments(*_moments(lrt), mu, true_var, n)
    # explicit weight sampling: a fresh weight matrix per draw
    weights = w + sigma2.sqrt() * torch.randn(n, *w.shape)
    explicit = torch.einsum("bi,noi->nbo", x, weights) + b
    _assert_moments(*_moments(explicit), mu, true_var, n)


def test_conv_train_moments_match_weight_sampling():
    torch.manual_seed(0)
    n = 3000
    layer = Conv2dSVDO(2, 3, 3, padding=1)
    with torch.no_grad():
        layer.log_sigma2.uniform_(-4, -1)
    x = torch.randn(1, 2, 5, 5)
    w, b = layer.weight.detach(), layer.bias.detach()
    sigma2 = torch.exp(layer.log_sigma2.detach())
    mu = F.conv2d(x, w, b, padding=1).double()
    true_var = F.conv2d(x * x, sigma2, padding=1).double()
    with torch.no_grad():
        lrt = layer(x.expand(n, 2, 5, 5)).unsqueeze(1)
    _assert_moments(*_moments(lrt), mu, true_var, n)
    # explicit weight sampling: one kernel per draw, all draws in one grouped convolution
    weights = w + sigma2.sqrt() * torch.randn(n, *w.shape)
    explicit = F.conv2d(x.repeat(1, n, 1, 1), weights.reshape(n * 3, 2, 3, 3), b.repeat(n),
                        padding=1, groups=n).reshape(n, 1, 3, 5, 5)
    # per position the marginal moments agree (the LRT treats positions as independent)
    _assert_moments(*_moments(explicit), mu, true_var, n)


def _kill_some(layer):
    with torch.no_grad():
        layer.log_sigma2.normal_(-3, 3)


def test_linear_eval_equals_masked_f_linear():
    layer = LinearSVDO(8, 5)
    _kill_some(layer)
    layer.eval()
    x = torch.randn(4, 8)
    mask = layer.log_alpha < layer.threshold
    assert 0 < mask.sum() < mask.numel()
    assert torch.equal(layer(x), F.linear(x, layer.weight * mask, layer.bias))
    assert torch.equal(layer(x), layer(x))  # deterministic


def test_conv_eval_equals_masked_f_conv2d_with_groups():
    layer = Conv2dSVDO(4, 6, 3, stride=2, padding=1, groups=2)
    _kill_some(layer)
    layer.eval()
    x = torch.randn(2, 4, 7, 7)
    mask = layer.log_alpha < 3.0
    ref = F.conv2d(x, layer.weight * mask, layer.bias, 2, 1, 1, 2)
    assert torch.equal(layer(x), ref)


def test_bias_false_and_groups_train_and_eval():
    lin = LinearSVDO(5, 3, bias=False)
    conv = Conv2dSVDO(4, 4, 3, groups=4, bias=False)
    assert lin.bias is None and conv.bias is None
    assert conv.weight.shape == torch.nn.Conv2d(4, 4, 3, groups=4).weight.shape
    for m, x in [(lin, torch.randn(2, 5)), (conv, torch.randn(2, 4, 6, 6))]:
        y = m(x)
        y.sum().backward()
        assert torch.isfinite(y).all()
        m.eval()
        assert torch.isfinite(m(x)).all()


def test_gradcheck_float64_linear_and_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    ls2 = torch.full((2, 3), -2.0, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def f_lin(x, w, ls2, b):
        torch.manual_seed(1)  # the same noise at every evaluation
        return linear_svdo(x, w, ls2, b, training=True)

    assert torch.autograd.gradcheck(f_lin, (x, w, ls2, b))
    xc = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    wc = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    lc = torch.full((2, 1, 3, 3), -2.0, dtype=torch.float64, requires_grad=True)

    def f_conv(x, w, ls2):
        torch.manual_seed(1)
        return conv2d_svdo(x, w, ls2, None, 1, 1, 1, 2, training=True)

    assert torch.autograd.gradcheck(f_conv, (xc, wc, lc))
    # the layer's KL as a function of (theta, log_sigma2)
    assert torch.autograd.gradcheck(lambda w, ls: kl_approx(compute_log_alpha(w, ls)).sum(), (w, ls2))


@pytest.mark.parametrize("weight_value,log_sigma2_value", [(0.0, -10.0), (1e-30, 20.0), (50.0, -50.0),
                                                           (1e-3, 40.0)])
def test_no_nan_for_extreme_parameters(weight_value, log_sigma2_value):
    for layer, x in [(LinearSVDO(4, 3), torch.randn(2, 4).abs()),
                     (Conv2dSVDO(2, 3, 3), torch.rand(2, 2, 5, 5))]:
        with torch.no_grad():
            layer.weight.fill_(weight_value)
            layer.log_sigma2.fill_(log_sigma2_value)
        y = layer(x)
        (y.sum() + layer.kl()).backward()
        assert torch.isfinite(y).all()
        for p in layer.parameters():
            assert torch.isfinite(p.grad).all()
        layer.eval()
        assert torch.isfinite(layer(x)).all()


def test_conv_variance_clamped_for_non_negative_input():
    # exp(log_sigma2) tiny and input non-negative: conv can round to tiny negatives; sqrt must not NaN
    layer = Conv2dSVDO(3, 4, 3)
    with torch.no_grad():
        layer.log_sigma2.fill_(-80.0)
    y = layer(torch.rand(2, 3, 8, 8))
    y.sum().backward()
    assert torch.isfinite(layer.weight.grad).all()


def test_dtype_and_device_and_before_training():
    layer = LinearSVDO(3, 2, dtype=torch.float64)
    assert layer.weight.dtype == torch.float64 and layer.log_alpha.dtype == torch.float64
    assert layer(torch.randn(1, 3, dtype=torch.float64)).dtype == torch.float64
    assert layer.kl() > 0
    bf = LinearSVDO(3, 2).to(torch.bfloat16)
    assert torch.isfinite(bf(torch.randn(2, 3, dtype=torch.bfloat16)).float()).all()
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        c = Conv2dSVDO(1, 2, 3).cuda()
        assert c(torch.randn(1, 1, 5, 5, device="cuda")).is_cuda


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="threshold"):
        LinearSVDO(3, 2, threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        Conv2dSVDO(1, 2, 3, threshold=float("inf"))
    layer = LinearSVDO(3, 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        layer(torch.randn(2, 4))
    with pytest.raises(ValueError, match="threshold"):
        layer.threshold = float("-inf")
    conv = Conv2dSVDO(3, 2, 3)
    with pytest.raises(ValueError, match="expected input of shape"):
        conv(torch.randn(2, 1, 5, 5))
    with pytest.raises(ValueError, match="expected input of shape"):
        conv(torch.randn(5, 5))
    with pytest.raises(ValueError, match="divisible by groups"):
        Conv2dSVDO(3, 4, 3, groups=2)


def test_reset_parameters_extra_repr_mask_and_svdo_layers():
    layer = LinearSVDO(4, 2, log_sigma2_init=-7.0)
    with torch.no_grad():
        layer.log_sigma2.fill_(3.0)
    layer.reset_parameters()
    assert torch.all(layer.log_sigma2 == -7.0)
    assert "threshold=3.0" in repr(layer) and "bias=True" in repr(layer)
    assert "groups=2" in repr(Conv2dSVDO(2, 2, 3, groups=2))
    assert layer.mask(threshold=1e9).all() and not layer.mask(threshold=-1e9).any()
    assert torch.equal(layer.masked_weight(threshold=-1e9), torch.zeros(2, 4))
    model = torch.nn.Sequential(layer, torch.nn.ReLU(), torch.nn.Linear(2, 2), Conv2dSVDO(1, 1, 1))
    assert [n for n, _ in svdo_layers(model)] == ["0", "3"]


def test_functional_eval_paths():
    w = torch.randn(3, 2)
    ls2 = torch.full((3, 2), 10.0)  # everything dropped
    assert torch.equal(linear_svdo(torch.randn(4, 2), w, ls2, None, training=False), torch.zeros(4, 3))
    wc = torch.randn(2, 1, 3, 3)
    out = conv2d_svdo(torch.randn(1, 1, 5, 5), wc, torch.full_like(wc, -30.0), None, training=False)
    assert out.shape == (1, 2, 3, 3) and out.abs().sum() > 0


def _reference_kl(layers):
    return sum(kl_approx(compute_log_alpha(m.weight, m.log_sigma2)).sum() for m in layers)


def _spread_parameters(layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in layers:
            m.log_sigma2.copy_(torch.randn(m.log_sigma2.shape, generator=g) * 8 - 5)
        first = layers[0]
        first.log_sigma2.view(-1)[:4] = torch.tensor([-200.0, 200.0, 85.0, -60.0])
        first.weight.view(-1)[:4] = torch.tensor([0.0, 1e-30, 50.0, 3.0])


@pytest.mark.parametrize("fused", ["1", "0"])
@pytest.mark.parametrize("grad_scale", [1.0, 1e-4])
def test_kl_sum_matches_reference_value_and_gradient(monkeypatch, fused, grad_scale):
    """The fast KL paths (compiled CPU kernel, or torch._foreach_ ops) against the plain formula."""
    from sparsevd_lab import kernels
    from sparsevd_lab.layers import kl_sum

    monkeypatch.setenv("SPARSEVD_KERNELS", fused)
    layers = [LinearSVDO(40, 30), Conv2dSVDO(3, 4, 3, groups=1), LinearSVDO(30, 5, bias=False)]
    _spread_parameters(layers)
    params = [p for m in layers for p in (m.weight, m.log_sigma2)]
    kl = kl_sum(layers, grad_scale=grad_scale)
    assert (type(kl.grad_fn).__name__ == "_KLSumFusedBackward") == (fused == "1")
    ref = _reference_kl(layers)
    assert float(kl.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    # the loss gives the KL a weight of 0.3 (not grad_scale): the gradient must still be exact
    got = torch.autograd.grad(0.3 * kl, params)
    want = torch.autograd.grad(0.3 * ref, params)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-6 * float(w.abs().max()))
    assert kernels.fused_kl_enabled(params) == (fused == "1")


def test_layer_kl_reuses_forward_variance_and_sgvlb_gradient():
    layer = LinearSVDO(6, 4)
    _spread_parameters([layer], seed=1)
    layer(torch.randn(3, 6))  # train-mode forward fills the variance cache
    with torch.no_grad():
        layer.log_sigma2.add_(0.5)  # an optimiser step: the cache must not be used any more
    kl = layer.kl()
    assert float(kl.detach()) == pytest.approx(float(_reference_kl([layer]).detach()), rel=1e-5)


def test_kernel_setting_validation(monkeypatch):
    from sparsevd_lab import kernels

    monkeypatch.setenv("SPARSEVD_KERNELS", "maybe")
    with pytest.raises(ValueError, match="SPARSEVD_KERNELS"):
        kernels.fused_kl_enabled([torch.zeros(2)])
    monkeypatch.setenv("SPARSEVD_KERNELS", "auto")
    assert not kernels.fused_kl_enabled([torch.zeros(2, dtype=torch.float64)])  # float32 only


def test_module_gradcheck_float64_linear_and_grouped_conv():
    torch.manual_seed(0)
    lin = LinearSVDO(3, 2, dtype=torch.float64)
    conv = Conv2dSVDO(2, 2, 3, padding=1, groups=2, bias=False, dtype=torch.float64)
    for layer, x in [(lin, torch.randn(4, 3, dtype=torch.float64)),
                     (conv, torch.randn(1, 2, 4, 4, dtype=torch.float64))]:
        with torch.no_grad():
            layer.log_sigma2.fill_(-2.0)
        names = [n for n, _ in layer.named_parameters()]

        def f(x, *ps):
            torch.manual_seed(7)  # the same noise at every evaluation
            return torch.func.functional_call(layer, dict(zip(names, ps)), (x,))

        x.requires_grad_()
        inputs = (x, *[p.detach().clone().requires_grad_() for p in layer.parameters()])
        assert torch.autograd.gradcheck(f, inputs)


# ---- the compiled paths of sparsevd_lab.kernels against the pure-PyTorch ones ----

def _kernels_or_skip():
    from sparsevd_lab import kernels

    if not kernels.kernels_enabled():
        pytest.skip("sparsevd_lab's compiled kernels are not available here")
    return kernels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["linear", "linear-nobias-3d", "conv", "conv-groups-stride-nobias"])
def test_compiled_lrt_matches_python_lrt(dtype, case):
    """Same random numbers, same values and gradients as layers._LRT, with and without bias."""
    kernels = _kernels_or_skip()
    from sparsevd_lab.layers import _LRT

    g = torch.Generator().manual_seed(3)
    if case.startswith("linear"):
        shape_w, shape_x, conv_args = (5, 7), ((2, 4, 7) if "3d" in case else (4, 7)), None
    elif case == "conv":
        shape_w, shape_x, conv_args = (4, 3, 3, 3), (2, 3, 6, 6), ((1, 1), (1, 1), (1, 1), 1)
    else:
        shape_w, shape_x, conv_args = (4, 1, 3, 3), (2, 2, 7, 7), ((2, 2), (0, 1), (1, 1), 2)
    has_bias = "nobias" not in case
    make = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_()  # noqa: E731
    x, w, ls2 = make(*shape_x), make(*shape_w), make(*shape_w)
    b = make(shape_w[0]) if has_bias else None
    inputs = [t for t in (x, w, ls2, b) if t is not None]
    results = []
    for fn in (lambda: _LRT.apply(x, w, ls2, b, conv_args), lambda: kernels.lrt(x, w, ls2, b, conv_args)):
        torch.manual_seed(11)
        out, sigma2 = fn()
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum(),
                                    inputs)
        results.append((out, sigma2, grads))
    (o1, s1, g1), (o2, s2, g2) = results
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    assert torch.allclose(o1, o2, **tol) and torch.allclose(s1, s2, **tol)
    assert not s2.requires_grad
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, **tol)


def test_compiled_lrt_gradcheck_float64():
    kernels = _kernels_or_skip()
    torch.manual_seed(0)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    ls2 = torch.full((2, 4), -1.0, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def fn(x, w, ls2, b):
        torch.manual_seed(5)  # the same noise at every evaluation
        return kernels.lrt(x, w, ls2, b)[0]

    assert torch.autograd.gradcheck(fn, (x, w, ls2, b))


def test_forward_kl_is_reused_once_and_only_for_unchanged_parameters():
    """A float32 train-mode forward computes the layer's KL with exp(log_sigma2); kl_sum takes it once,
    and recomputes after the parameters change (an optimiser step)."""
    _kernels_or_skip()
    from sparsevd_lab.layers import kl_sum

    layer = LinearSVDO(20, 8)
    _spread_parameters([layer], seed=2)
    layer(torch.randn(5, 20))
    assert getattr(layer, "_kl_cache", None) is not None
    first = kl_sum([layer]).detach()
    assert getattr(layer, "_kl_cache", None) is None  # taken
    assert float(first) == pytest.approx(float(_reference_kl([layer]).detach()), rel=1e-5)
    again = kl_sum([layer]).detach()
    assert float(again) == pytest.approx(float(first), rel=1e-6)
    layer(torch.randn(5, 20))
    with torch.no_grad():
        layer.weight.mul_(1.5)
        layer.log_sigma2.add_(0.7)
    stale = kl_sum([layer]).detach()
    assert float(stale) == pytest.approx(float(_reference_kl([layer]).detach()), rel=1e-5)
    with torch.no_grad():  # no gradient: the forward does not compute the KL at all
        layer(torch.randn(5, 20))
    assert getattr(layer, "_kl_cache", None) is None


def test_sgvlb_step_same_with_and_without_compiled_kernels(monkeypatch):
    """A whole SGVLB gradient (conv + linear layers) is the same through the compiled kernels and the
    pure-PyTorch paths, for two steps (the second uses the pre-scaled KL of the forward pass)."""
    _kernels_or_skip()
    from torch import nn

    from sparsevd_lab import SGVLB

    def build():
        torch.manual_seed(0)
        return nn.Sequential(Conv2dSVDO(1, 3, 3), nn.ReLU(), nn.Flatten(), LinearSVDO(3 * 6 * 6, 5))

    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    grads = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("SPARSEVD_KERNELS", setting)
        model = build()
        with torch.no_grad():
            for m in (model[0], model[3]):
                m.log_sigma2.uniform_(-8, 1)
        loss_fn = SGVLB(model, train_size=100)
        steps = []
        for step in range(2):
            torch.manual_seed(10 + step)
            model.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            steps.append((float(loss.detach()), [p.grad.clone() for p in model.parameters()]))
        grads[setting] = steps
    for (l1, g1), (l0, g0) in zip(grads["1"], grads["0"]):
        assert l1 == pytest.approx(l0, rel=1e-5)
        for a, b in zip(g1, g0):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))
