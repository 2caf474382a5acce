"""The fast path (sparsevd_lab.kernels) against the reference (sparsevd_lab.layers with the kernels off):
the same values and gradients, float32 and float64, and the same two-step SGVLB gradient."""
import warnings

import pytest
import torch
from torch import nn

from sparsevd_lab import SGVLB, Conv2dSVDO, LinearSVDO, conv2d_svdo, kernels, linear_svdo
from sparsevd_lab.layers import compute_log_alpha, kl_approx, kl_sum


@pytest.fixture(scope="module", autouse=True)
def compiled():
    # SPARSEVD_KERNELS=1 (scripts/test.sh, CI): a failed build raises here, so these tests fail
    if not kernels.kernels_enabled():
        pytest.skip("sparsevd_lab's compiled kernels are not available here (SPARSEVD_KERNELS=auto)")


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


# ---- every input of every compiled entry point is checked (no out-of-bounds read, a clear error) ----

def _cpp():
    return kernels._build()


@pytest.mark.parametrize("case, message", [
    ("shape", r"log_sigma2 of layer 0 has shape \[2, 2\] but its weight \(theta\) has \[3, 6\]"),
    ("count", r"one log_sigma2 and two gradient tensors per weight"),
    ("dtype", r"log_sigma2 of layer 0 is Double .*its weight Float"),
    ("int", r"weight 0 must be a float32 or float64 CPU tensor"),
    ("device", r"weight 0 must be a float32 or float64 CPU tensor, got Float on meta"),
])
def test_kl_sum_refuses_mismatched_inputs(case, message):
    """kernels.kl_sum (what SGVLB calls) with a (2, 2) log_sigma2 for a (3, 6) weight once returned
    9.2e28 read from beyond the tensor; every mismatch now raises before a read."""
    w, ls2 = torch.randn(3, 6, requires_grad=True), torch.randn(3, 6, requires_grad=True)
    weights, log_sigma2s = [w], [ls2]
    if case == "shape":
        log_sigma2s = [torch.randn(2, 2, requires_grad=True)]
    elif case == "count":
        weights, log_sigma2s = [w, torch.randn(2, 2)], [ls2]
    elif case == "dtype":
        log_sigma2s = [ls2.detach().double()]
    elif case == "int":
        weights, log_sigma2s = [torch.ones(3, 6, dtype=torch.int32)], [torch.ones(3, 6, dtype=torch.int32)]
    elif case == "device":
        weights, log_sigma2s = [torch.empty(3, 6, device="meta")], [torch.empty(3, 6, device="meta")]
    with pytest.raises(RuntimeError, match=message):
        kernels.kl_sum(weights, log_sigma2s)


def test_kl_fused_checks_its_gradient_buffers():
    w, ls2 = torch.randn(3, 6), torch.randn(3, 6)
    with pytest.raises(RuntimeError, match=r"the theta gradient of layer 0 has shape \[18\]"):
        _cpp().kl_fused([w], [ls2], [torch.empty(18)], [torch.empty(3, 6)], 1.0)
    with pytest.raises(RuntimeError, match="must be contiguous"):
        _cpp().kl_fused([w], [ls2], [torch.empty(6, 3).t()], [torch.empty(3, 6)], 1.0)
    total = _cpp().kl_fused([w], [ls2], [torch.empty(3, 6)], [torch.empty(3, 6)], 1.0)  # the right ones pass
    assert total == pytest.approx(float(kl_approx(compute_log_alpha(w, ls2)).sum()), rel=1e-5)


@pytest.mark.parametrize("case, message", [
    ("width", r"expected input of shape \(\.\.\., 7\), got \[4, 700\]"),
    ("log_sigma2", r"log_sigma2 has shape \[5, 6\] but the weight \(theta\) has \[5, 7\]"),
    ("input-dtype", r"the input is Double on cpu; the layer's parameters are Float"),
    ("bias", r"the bias must be a 1-d Float CPU tensor of 5 entries, got Float of shape \[4\]"),
    ("device", r"the input is Float on meta"),
    ("weight-dtype", r"the weight \(theta\) must be float32 or float64, got Half"),
    ("conv-channels", r"expected input of shape \(N, 4, H, W\) or \(4, H, W\), got \[2, 3, 7, 7\]"),
    ("conv-groups", r"groups = 3 must be >= 1 and divide the 4 output channels"),
    ("conv-stride", r"stride, padding and dilation are pairs"),
    ("conv-padding", r"padding >= 0"),
])
def test_lrt_refuses_bad_inputs(case, message):
    x, w, ls2, b = torch.randn(4, 7), torch.randn(5, 7), torch.randn(5, 7), torch.randn(5)
    conv = None
    if case == "width":
        x = torch.randn(4, 700)
    elif case == "log_sigma2":
        ls2 = torch.randn(5, 6)
    elif case == "input-dtype":
        x = x.double()
    elif case == "bias":
        b = torch.randn(4)
    elif case == "device":
        x = torch.empty(4, 7, device="meta")
    elif case == "weight-dtype":
        x, w, ls2, b = x.half(), w.half(), ls2.half(), b.half()
    else:
        x, w, ls2, b = torch.randn(2, 4, 7, 7), torch.randn(4, 4, 3, 3), torch.randn(4, 4, 3, 3), None
        conv = ((1, 1), (0, 0), (1, 1), 1)
        if case == "conv-channels":
            x = torch.randn(2, 3, 7, 7)
        elif case == "conv-groups":
            conv = ((1, 1), (0, 0), (1, 1), 3)
        elif case == "conv-stride":
            conv = ((1, 1, 1), (0, 0), (1, 1), 1)
        elif case == "conv-padding":
            conv = ((1, 1), (-1, 0), (1, 1), 1)
    with pytest.raises(RuntimeError, match=message):
        kernels.lrt(x, w, ls2, b, conv)


def _csr(out_f=3, in_f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_f, in_f, generator=g) * (torch.rand(out_f, in_f, generator=g) < 0.6)
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        csr = w.to_sparse_csr()
    return w, csr.crow_indices().int(), csr.col_indices().int(), csr.values().contiguous()


_EMPTY = torch.empty(0)


@pytest.mark.parametrize("case, message", [
    ("width-narrow", r"expected input of shape \(N, 5\), got \[4, 4\]"),
    ("width-wide", r"expected input of shape \(N, 5\), got \[4, 700\]"),
    ("x-dtype", r"x must be a contiguous 2-d float32 CPU tensor, got Double"),
    ("x-strided", r"\(not contiguous\)"),
    ("used", r"used input feature 9 is not one of the 5 columns of x"),
    ("used-dtype", r"used \(input features\) of layer 0 must be a contiguous 1-d Int"),
    ("crow-length", r"crow_indices of layer 0 has 3 entries for 3 outputs"),
    ("crow-order", r"crow_indices of layer 0 decrease at row"),
    ("crow-end", r"run from 0 to"),
    ("col-range", r"col_indices of layer 0 holds 99 but the layer has 5 inputs"),
    ("values", r"layer 0 has \d+ col_indices but \d+ values"),
    ("values-dtype", r"values of layer 0 must be a contiguous 1-d Float"),
    ("bias", r"the bias of layer 0 has 2 entries for 3 outputs"),
    ("lists", r"one crow, col, values, bias and relu flag per layer"),
    ("second-layer", r"col_indices of layer 1 holds 3 but the layer has 3 inputs"),
])
def test_sparse_mlp_refuses_bad_inputs(case, message):
    """The compiled inference kernel reads x, used and every CSR array by index: a compressed
    LeNet-300-100 given a (4, 700) input once returned values from 1e18 to 1e35."""
    w, crow, col, val = _csr()
    x, in_f, used, bias, outs, relu = torch.randn(4, 5), 5, _EMPTY, torch.randn(3), [3], [False]
    crows, cols, vals, biases = [crow], [col], [val], [bias]
    if case == "width-narrow":
        x = torch.randn(4, 4)
    elif case == "width-wide":
        x = torch.randn(4, 700)
    elif case == "x-dtype":
        x = x.double()
    elif case == "x-strided":
        x = torch.randn(5, 4).t()
    elif case == "used":
        used = torch.tensor([0, 2, 9], dtype=torch.int32)
    elif case == "used-dtype":
        used = torch.tensor([0, 2, 3])
    elif case == "crow-length":
        crows = [crow[:-1].clone()]
    elif case == "crow-order":
        crows = [torch.tensor([0, 2, 1, int(crow[-1])], dtype=torch.int32)]
    elif case == "crow-end":
        crows = [torch.tensor([0, 1, 2, int(crow[-1]) + 5], dtype=torch.int32)]
    elif case == "col-range":
        bad = col.clone()
        bad[0] = 99
        cols = [bad]
    elif case == "values":
        vals = [val[:-1].clone()]
    elif case == "values-dtype":
        vals = [val.double()]
    elif case == "bias":
        biases = [torch.randn(2)]
    elif case == "lists":
        biases = [bias, bias]
    elif case == "second-layer":  # layer 1 reads the 3 outputs of layer 0: a column 3 is out of range
        crows.append(torch.tensor([0, 1], dtype=torch.int32))
        cols.append(torch.tensor([3], dtype=torch.int32))
        vals.append(torch.ones(1))
        biases.append(_EMPTY)
        outs, relu = [3, 1], [True, False]
    with pytest.raises(RuntimeError, match=message):
        _cpp().sparse_mlp(x, in_f, used, crows, cols, vals, biases, outs, relu)


def test_sparse_mlp_with_good_inputs_equals_the_dense_product():
    """The checks pass what is right: the same call with a valid CSR gives x W^T + b."""
    w, crow, col, val = _csr()
    x, b = torch.randn(11, 5), torch.randn(3)
    got = _cpp().sparse_mlp(x, 5, _EMPTY, [crow], [col], [val], [b], [3], [False])
    assert torch.allclose(got, torch.nn.functional.linear(x, w, b), rtol=1e-5, atol=1e-6)
    empty = _cpp().sparse_mlp(torch.randn(0, 5), 5, _EMPTY, [crow], [col], [val], [b], [3], [False])
    assert empty.shape == (0, 3)
