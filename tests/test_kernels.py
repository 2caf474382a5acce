"""The fast path (sparsevd_lab.kernels) against the reference (sparsevd_lab.layers with the kernels off):
the same values and gradients, float32 and float64, and the same two-step SGVLB gradient."""
import pytest
import torch
from torch import nn

from sparsevd_lab import SGVLB, Conv2dSVDO, LinearSVDO, conv2d_svdo, kernels, linear_svdo
from sparsevd_lab.layers import compute_log_alpha, kl_approx, kl_sum


@pytest.fixture(scope="module", autouse=True)
def compiled():
    if not kernels.kernels_enabled():
        pytest.skip("sparsevd_lab's compiled kernels are not available here")


TOL = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def _both(fn):
    """fn() through the kernels, then through the reference, each from the same random state."""
    torch.manual_seed(11)
    fast = fn()
    with kernels.disabled():
        torch.manual_seed(11)
        ref = fn()
    return fast, ref


def test_switch_chooses_the_path(monkeypatch):
    x, w = torch.randn(2, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    ls2 = torch.full((4, 3), -3.0, requires_grad=True)
    assert type(linear_svdo(x, w, ls2).grad_fn).__name__ == "CppFunction"  # the compiled LRT
    with kernels.disabled():
        assert not kernels.applies(x) and type(linear_svdo(x, w, ls2).grad_fn).__name__ == "AddBackward0"
    monkeypatch.setenv("SPARSEVD_KERNELS", "0")
    assert not kernels.applies(x) and type(linear_svdo(x, w, ls2).grad_fn).__name__ == "AddBackward0"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["linear", "linear-nobias-3d", "conv", "conv-groups-stride-nobias",
                                  "conv-channels-last"])
def test_lrt_equals_reference(dtype, case):
    """Same random numbers, same values and gradients (input, theta, log_sigma2, bias)."""
    g = torch.Generator().manual_seed(3)
    make = lambda *s: torch.randn(*s, generator=g, dtype=dtype).requires_grad_()  # noqa: E731
    if case.startswith("linear"):
        shape_w, shape_x = (5, 7), ((2, 4, 7) if "3d" in case else (4, 7))
        x, w, ls2 = make(*shape_x), make(*shape_w), make(*shape_w)
        b = None if "nobias" in case else make(5)
        fn = lambda: linear_svdo(x, w, ls2, b)  # noqa: E731
    else:
        groups, stride, padding = (2, 2, (0, 1)) if "groups" in case else (1, 1, 1)
        x, w, ls2 = make(2, 4, 7, 7), make(4, 4 // groups, 3, 3), make(4, 4 // groups, 3, 3)
        if "channels-last" in case:  # conv outputs channels-last: the kernel's non-contiguous path
            x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
        b = None if "nobias" in case else make(4)
        fn = lambda: conv2d_svdo(x, w, ls2, b, stride, padding, 1, groups)  # noqa: E731
    inputs = [t for t in (x, w, ls2, b) if t is not None]

    def run():
        out = fn()
        weights = torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)
        return out.detach(), torch.autograd.grad((out * weights).sum(), inputs)

    (o1, g1), (o2, g2) = _both(run)
    assert torch.allclose(o1, o2, **TOL[dtype])
    for a, c in zip(g1, g2):
        assert torch.allclose(a, c, **TOL[dtype])


def test_lrt_gradcheck_float64():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    ls2 = torch.full((2, 4), -1.0, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def fn(x, w, ls2, b):
        torch.manual_seed(5)  # the same noise at every evaluation
        return kernels.lrt(x, w, ls2, b)

    assert torch.autograd.gradcheck(fn, (x, w, ls2, b))


def _spread(layers, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in layers:
            m.to(dtype)
            m.log_sigma2.copy_(torch.randn(m.log_sigma2.shape, generator=g) * 8 - 5)
        first = layers[0]
        first.log_sigma2.view(-1)[:4] = torch.tensor([-200.0, 79.0, 60.0, -60.0])
        first.weight.view(-1)[:4] = torch.tensor([0.0, 1e-30, 50.0, 3.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad_scale", [1.0, 1e-4])
def test_kl_equals_reference(dtype, grad_scale):
    """The compiled summed KL against the plain formula, whatever weight the loss gives the KL."""
    layers = [LinearSVDO(40, 30), Conv2dSVDO(3, 4, 3), LinearSVDO(30, 5, bias=False)]
    _spread(layers, dtype)
    params = [p for m in layers for p in (m.weight, m.log_sigma2)]
    kl = kl_sum(layers, grad_scale=grad_scale)
    assert type(kl.grad_fn).__name__ == "_KLSumBackward"
    ref = sum(kl_approx(compute_log_alpha(m.weight, m.log_sigma2)).sum() for m in layers)
    rtol = 1e-5 if dtype == torch.float32 else 1e-10
    assert float(kl.detach()) == pytest.approx(float(ref.detach()), rel=rtol)
    got = torch.autograd.grad(0.3 * kl, params)  # the loss's weight 0.3, not grad_scale
    want = torch.autograd.grad(0.3 * ref, params)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=100 * rtol, atol=rtol * float(w.abs().max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_two_sgvlb_steps_equal_reference(dtype):
    """A whole SGVLB gradient (conv + linear layers), two steps with an optimiser step between: the
    same through the kernels and through the reference."""
    x, y = torch.randn(4, 1, 8, 8, dtype=dtype), torch.tensor([0, 1, 2, 3])

    def two_steps():
        torch.manual_seed(0)
        model = nn.Sequential(Conv2dSVDO(1, 3, 3), nn.ReLU(), nn.Flatten(), LinearSVDO(3 * 6 * 6, 5)).to(dtype)
        with torch.no_grad():
            for m in (model[0], model[3]):
                m.log_sigma2.uniform_(-8, 1)
        loss_fn = SGVLB(model, train_size=100)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        steps = []
        for step in range(2):
            torch.manual_seed(10 + step)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            steps.append((float(loss.detach()), [p.grad.clone() for p in model.parameters()]))
            opt.step()
        return steps

    fast, ref = _both(two_steps)
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    for (l1, g1), (l0, g0) in zip(fast, ref):
        assert l1 == pytest.approx(l0, rel=rtol)
        for a, b in zip(g1, g0):
            assert torch.allclose(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))


def test_kernel_sources_are_package_files():
    assert all(p.is_file() and p.suffix == ".cpp" for p in kernels.SOURCES)
