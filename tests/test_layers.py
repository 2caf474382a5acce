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


def test_kernel_setting_validation(monkeypatch):
    from sparsevd_lab import kernels

    monkeypatch.setenv("SPARSEVD_KERNELS", "maybe")
    with pytest.raises(ValueError, match="SPARSEVD_KERNELS"):
        kernels.applies(torch.zeros(2))
    monkeypatch.setenv("SPARSEVD_KERNELS", "auto")
    assert not kernels.applies(torch.zeros(2, dtype=torch.bfloat16))  # float32 and float64 only
    assert not kernels.applies(torch.zeros(2), torch.zeros(2, dtype=torch.float64))  # one dtype


@pytest.mark.parametrize("kernels_setting", ["auto", "0"])
def test_train_mode_forward_goes_through_the_functional_counterpart(monkeypatch, kernels_setting):
    """The modules hold parameters; the math is in linear_svdo / conv2d_svdo, in train and eval mode."""
    from sparsevd_lab import layers

    monkeypatch.setenv("SPARSEVD_KERNELS", kernels_setting)
    calls = []
    for name in ("linear_svdo", "conv2d_svdo"):
        real = getattr(layers, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs["training"]))
            return _real(*args, **kwargs)

        monkeypatch.setattr(layers, name, spy)
    lin, conv = LinearSVDO(4, 3), Conv2dSVDO(1, 2, 3)
    lin(torch.randn(2, 4))
    conv(torch.randn(1, 1, 5, 5))
    lin.eval()(torch.randn(2, 4))
    conv.eval()(torch.randn(1, 1, 5, 5))
    assert calls == [("linear_svdo", True), ("conv2d_svdo", True), ("linear_svdo", False),
                     ("conv2d_svdo", False)]


def test_forward_leaves_no_state_for_the_loss():
    """No hidden hand-over between a layer's forward pass and the KL: forward adds no attribute."""
    for layer, x in [(LinearSVDO(5, 3), torch.randn(2, 5)), (Conv2dSVDO(1, 2, 3), torch.randn(1, 1, 5, 5))]:
        before = set(layer.__dict__)
        layer(x).sum().backward()
        layer.kl().backward()
        assert set(layer.__dict__) == before


def test_layers_module_is_the_readable_reference():
    """layers.py: at most 300 lines, no custom autograd Function, every eq. 17 line names the equation."""
    import inspect

    from sparsevd_lab import layers

    source = inspect.getsource(layers)
    assert len(source.splitlines()) <= 300
    assert "autograd.Function" not in source and "_version" not in source
    for fn in (layers.linear_svdo, layers.conv2d_svdo):
        lines = [ln for ln in inspect.getsource(fn).splitlines() if "F.linear(" in ln or "F.conv2d(" in ln]
        assert lines and all("eq." in ln or "sec. 4.3" in ln for ln in lines), lines


def test_new_user_mistakes_get_clear_errors():
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        Conv2dSVDO(1, 2, 0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Conv2dSVDO(1, 2, 3, stride=(1, 0))
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="log_sigma2_init must be a finite number"):
            LinearSVDO(3, 2, log_sigma2_init=bad)
        with pytest.raises(ValueError, match="log_sigma2_init must be a finite number"):
            Conv2dSVDO(1, 2, 3, log_sigma2_init=bad)
    with pytest.raises(TypeError, match=r"floating-point tensor, got torch.int64.*x.float\(\)"):
        LinearSVDO(3, 2)(torch.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="floating-point tensor, got torch.uint8"):
        Conv2dSVDO(1, 2, 3)(torch.zeros(1, 1, 5, 5, dtype=torch.uint8))


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


def test_api_edges_of_issue_20():
    """Sizes, strided 'same' padding, a float64 input, threshold=None: clear errors, at once."""
    for bad in (10.7, -1, 0, True, "3"):
        with pytest.raises(ValueError, match="in_features must be a whole number >= 1"):
            LinearSVDO(bad, 3)
    with pytest.raises(ValueError, match=r"int\(10.7\) = 10"):
        LinearSVDO(10.7, 3)
    with pytest.raises(ValueError, match="out_channels must be a whole number"):
        Conv2dSVDO(1, -2, 3)
    # torch.nn.Conv2d's rule, at construction as there
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        torch.nn.Conv2d(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        Conv2dSVDO(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same', 'valid'"):
        Conv2dSVDO(1, 2, 3, padding="full")
    same = Conv2dSVDO(1, 2, 3, padding="same").eval()
    assert same(torch.randn(1, 1, 6, 6)).shape == (1, 2, 6, 6)
    with pytest.raises(TypeError, match=r"float32 weights but the input is torch.float64.*x.to"):
        LinearSVDO(3, 2)(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32 weights but the input is torch.float64"):
        Conv2dSVDO(1, 2, 3)(torch.randn(1, 1, 5, 5, dtype=torch.float64))
    for make in (lambda: LinearSVDO(3, 2, threshold=None), lambda: Conv2dSVDO(1, 2, 3, threshold="3")):
        with pytest.raises(TypeError, match="threshold must be a number"):
            make()
    layer = LinearSVDO(3, 2)
    with pytest.raises(TypeError, match="threshold must be a number"):
        layer.threshold = None
    assert layer.mask(None).shape == (2, 3)  # None here means: the layer's own threshold
    with pytest.raises(TypeError, match="threshold must be a number"):
        linear_svdo(torch.randn(1, 3), layer.weight, layer.log_sigma2, training=False, threshold=None)
    with pytest.raises(TypeError, match="threshold must be a number"):
        conv2d_svdo(torch.randn(1, 1, 5, 5), torch.randn(2, 1, 3, 3), torch.zeros(2, 1, 3, 3),
                    training=False, threshold=None)
