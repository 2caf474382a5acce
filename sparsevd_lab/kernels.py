"""Optional compiled CPU code for the two hot spots of a Sparse VD training step.

Why: a CPU training step of LeNet-300-100 at batch 100 takes a few milliseconds, and beyond the
matrix products it is dominated by (a) the elementwise KL of eq. 14 over all 266,200 weights (two
logs, two exponentials, a dozen arithmetic passes, each a trip through memory) and (b) the Python
interpreter running the local reparameterisation trick's ~20 tensor operations per layer. So:

- ``kl_fused``: one C++ loop reads theta and log_sigma2 once and writes both gradients once (the
  same math as ``layers.kl_approx``), float32 on the CPU;
- ``lrt``: the LRT forward and backward (eq. 17) as a C++ autograd Function, the same tensor
  operations in the same order as ``layers._LRT`` (hence the same random numbers and results), for
  CPU tensors of any floating dtype;
- ``sparse_mlp``: inference of a whole compressed chain of sparse linear layers and ReLUs
  (``compress.SparseMLP``) in one pass over the input; ``csr_linear`` is its one-layer case
  (``compress.SparseLinear``).

Both are compiled on first use with ``torch.utils.cpp_extension.load_inline`` (needs a C++ compiler
and ``ninja``; about a minute, then cached by torch in ~/.cache/torch_extensions). When they cannot be
built, ``sparsevd_lab.layers`` uses its pure-PyTorch paths, which give the same values. The
environment variable ``SPARSEVD_KERNELS`` chooses: ``auto`` (default: use them when they build,
else warn once and fall back), ``0`` (never), ``1`` (a failed build is an error).
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

from .settings import settings

__all__ = ["kernels_enabled", "fused_kl_enabled", "fused_kl", "lrt_enabled", "lrt", "train_forward", "csr_linear", "sparse_mlp"]

ENV = "SPARSEVD_KERNELS"

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

// Paper eq. 14 constants; LOG_SIGMA2_MAX and EPS as in sparsevd_lab/layers.py.
static const float K1 = 0.63576f, K2 = 1.87320f, K3 = 1.48695f;
static const float LOG_SIGMA2_MAX = 80.f, EPS = 1e-8f;

static inline float as_float(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int32_t as_int(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

// exp(x) for x in [-87, 88] (callers clamp): x = n ln2 + r with |r| <= ln2/2, exp(r) by the Cephes
// expf polynomial, 2^n written into the exponent bits. Relative error ~2e-7. Inline, so that gcc
// vectorises the whole loop below (a libm call per element is ~1.5x slower here).
static inline float exp_approx(float x) {
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.f;
  return p * as_float(((int32_t)n + 127) << 23);
}

// log(x) for normal x > 0: x = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) by the Cephes logf
// polynomial in f = m - 1. Error ~1e-7 (relative, absolute near x = 1).
static inline float log_approx(float x) {
  const int32_t i = as_int(x);
  int32_t e = ((i >> 23) & 0xff) - 126;
  float m = as_float((i & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  m = small ? m + m : m;
  const float f = m - 1.f, z = f * f;
  float p = 7.0376836292E-2f;
  p = p * f - 1.1514610310E-1f;
  p = p * f + 1.1676998740E-1f;
  p = p * f - 1.2420140846E-1f;
  p = p * f + 1.4249322787E-1f;
  p = p * f - 1.6668057665E-1f;
  p = p * f + 2.0000714765E-1f;
  p = p * f - 2.4999993993E-1f;
  p = p * f + 3.3333331174E-1f;
  const float ef = (float)e;
  return f + (f * z * p - 2.12194440e-4f * ef - 0.5f * z) + 0.693359375f * ef;
}

// Per weight: t = theta^2 + eps, c = min(log sigma^2, LOG_SIGMA2_MAX), sigma^2 = exp(c),
// log alpha = log sigma^2 - log t (eq. 15), s = sigmoid(k2 + k3 log alpha),
// q = 1 / (1 + alpha) = t / (t + sigma^2),
// KL = k1 (1 - s) + 0.5 log1p(1/alpha) = k1 (1 - s) + 0.5 (log(t + sigma^2) - c)  (eq. 14),
// dKL/dlog_sigma2 = -0.5 base, dKL/dtheta = base * theta / t, base = q + 2 k1 k3 s (1 - s).
// The gradients are written multiplied by `scale`; with WRITE_SIGMA2 sigma^2 is written too, for the
// layer's LRT forward (eq. 17), which then needs no exponential of its own. Every intermediate stays
// finite, as -ffast-math assumes (exp arguments are clamped; t >= eps).
template <bool WRITE_SIGMA2>
static float kl_block(const float* __restrict pw, const float* __restrict pl, float* __restrict pgw,
                      float* __restrict pgl, float* __restrict ps2, int64_t i0, int64_t i1, float scale) {
  float acc = 0.f;
  for (int64_t i = i0; i < i1; ++i) {
    const float wi = pw[i];
    const float t = wi * wi + EPS;
    const float c = pl[i] < LOG_SIGMA2_MAX ? pl[i] : LOG_SIGMA2_MAX;
    const float sigma2 = exp_approx(c > -87.f ? c : -87.f);  // below e^-87 sigma^2 << t anyway
    if (WRITE_SIGMA2) ps2[i] = sigma2;
    const float u = t + sigma2;
    const float la = pl[i] - log_approx(t);
    float z = -(K2 + K3 * la);
    z = z < 80.f ? (z > -80.f ? z : -80.f) : 80.f;
    const float e = exp_approx(z);
    const float s = 1.f / (1.f + e);  // 1 - s = e s: no cancellation when s is close to 1
    acc += K1 * e * s + 0.5f * (log_approx(u) - c);
    const float base = t / u + 2.f * K1 * K3 * s * s * e;
    pgl[i] = -0.5f * scale * base;
    pgw[i] = scale * base * wi / t;
  }
  return acc;
}

// Summed KL of all given layers; fills gws, gls (and sigma2s when not empty), float32 CPU contiguous.
double kl_fused(std::vector<torch::Tensor> ws, std::vector<torch::Tensor> ls2s,
                std::vector<torch::Tensor> gws, std::vector<torch::Tensor> gls,
                std::vector<torch::Tensor> sigma2s, double scale) {
  double total = 0.0;
  for (size_t k = 0; k < ws.size(); ++k) {
    const float* pw = ws[k].data_ptr<float>();
    const float* pl = ls2s[k].data_ptr<float>();
    float* pgw = gws[k].data_ptr<float>();
    float* pgl = gls[k].data_ptr<float>();
    float* ps2 = sigma2s.empty() ? nullptr : sigma2s[k].data_ptr<float>();
    const int64_t n = ws[k].numel(), block = 4096, nblocks = (n + block - 1) / block;
    std::vector<double> partial(nblocks, 0.0);
    at::parallel_for(0, nblocks, 8, [&](int64_t b_begin, int64_t b_end) {
      for (int64_t b = b_begin; b < b_end; ++b) {
        const int64_t i0 = b * block, i1 = std::min(n, (b + 1) * block);
        partial[b] = ps2 ? kl_block<true>(pw, pl, pgw, pgl, ps2, i0, i1, (float)scale)
                         : kl_block<false>(pw, pl, pgw, pgl, ps2, i0, i1, (float)scale);
      }
    });
    for (double p : partial) total += p;
  }
  return total;
}

// Eight sums at once: acc[r] = bias + sum_k values[k] * tile[cols[k] * 8 + r] over one CSR row, with
// GCC/Clang vector types, so that each kept weight is a few 4-wide multiply-adds on contiguous floats
// (left alone, gcc vectorises over k with slow gathers instead). The sums run in double, so that the
// result stays within float rounding of a dense float32 product whatever the order of the terms.
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
static inline void row_dot(float* acc, const float* tile, int32_t k0, int32_t k1, const int32_t* cols,
                           const float* values, float bias) {
  const double b = bias;
  v4d lo = {b, b, b, b}, hi = {b, b, b, b};
  for (int32_t k = k0; k < k1; ++k) {
    v4f t0, t1;
    std::memcpy(&t0, tile + (int64_t)cols[k] * 8, sizeof t0);
    std::memcpy(&t1, tile + (int64_t)cols[k] * 8 + 4, sizeof t1);
    const double w = values[k];
    lo += w * __builtin_convertvector(t0, v4d);
    hi += w * __builtin_convertvector(t1, v4d);
  }
  const v4f flo = __builtin_convertvector(lo, v4f), fhi = __builtin_convertvector(hi, v4f);
  std::memcpy(acc, &flo, sizeof flo);
  std::memcpy(acc + 4, &fhi, sizeof fhi);
}

// A whole compressed MLP (what Sparse VD leaves of LeNet-300-100) in one pass: for eight input rows
// at a time, the used input features are gathered into a feature-major tile, then every layer
// (CSR weight, bias, optional ReLU) maps one tile to the next inside L1 cache; only the last layer
// writes memory. No intermediate tensors, no transposes, no per-layer dispatch. An empty `used`
// means every input feature (one layer of it is compress.SparseLinear's kernel).
torch::Tensor sparse_mlp(torch::Tensor x, torch::Tensor used, std::vector<torch::Tensor> crows,
                         std::vector<torch::Tensor> cols, std::vector<torch::Tensor> vals,
                         std::vector<torch::Tensor> biases, std::vector<int64_t> outs,
                         std::vector<bool> relu) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "sparse_mlp: x must be a contiguous 2-d float32 CPU tensor");
  const int64_t n = x.size(0), in = x.size(1), L = (int64_t)outs.size();
  const int64_t n_used = used.numel() ? used.numel() : in;
  int64_t widest = n_used;
  for (auto o : outs) widest = std::max(widest, o);
  auto y = torch::empty({n, outs.back()}, x.options());
  const float* px = x.data_ptr<float>();
  const int32_t* pu = used.numel() ? used.data_ptr<int32_t>() : nullptr;
  float* py = y.data_ptr<float>();
  constexpr int64_t R = 8;
  at::parallel_for(0, (n + R - 1) / R, 4, [&](int64_t g0, int64_t g1) {
    std::vector<float> a(widest * R), b(widest * R);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t row0 = g * R, rows = std::min(R, n - row0);
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = px + (row0 + std::min(r, rows - 1)) * in;  // a short last group repeats a row
        if (pu) {
          for (int64_t u = 0; u < n_used; ++u) a[u * R + r] = xr[pu[u]];
        } else {
          for (int64_t u = 0; u < n_used; ++u) a[u * R + r] = xr[u];
        }
      }
      float* cur = a.data();
      float* nxt = b.data();
      for (int64_t l = 0; l < L; ++l) {
        const int32_t* pr = crows[l].data_ptr<int32_t>();
        const int32_t* pc = cols[l].data_ptr<int32_t>();
        const float* pv = vals[l].data_ptr<float>();
        const float* pb = biases[l].numel() ? biases[l].data_ptr<float>() : nullptr;
        const bool last = l == L - 1, act = relu[l];
        for (int64_t j = 0; j < outs[l]; ++j) {
          float acc[R];
          row_dot(acc, cur, pr[j], pr[j + 1], pc, pv, pb ? pb[j] : 0.f);
          if (act) for (int64_t r = 0; r < R; ++r) acc[r] = acc[r] > 0.f ? acc[r] : 0.f;
          if (last) {
            for (int64_t r = 0; r < rows; ++r) py[(row0 + r) * outs[l] + j] = acc[r];
          } else {
            for (int64_t r = 0; r < R; ++r) nxt[j * R + r] = acc[r];
          }
        }
        std::swap(cur, nxt);
      }
    }
  });
  return y;
}

// The train-mode forward of a Sparse VD layer with the local reparameterisation trick (eq. 17) as a
// C++ autograd Function: the same ops, in the same order, as layers._LRT (so the same random numbers
// and results), without the Python interpreter in the forward or the backward pass.
//   mu = op(x, theta) + b,  var = op(x*x, sigma^2) (no bias),  out = mu + sqrt(var) * eps
// op is linear, or conv2d when `conv`. sigma^2 is exp(min(log_sigma2, LOG_SIGMA2_MAX)), or `sigma2`
// when given (the KL kernel computed it). Returns {out} and, when sigma^2 was computed here, sigma^2
// (no gradient).
using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;
static const double VAR_FLOOR = 1e-16;

struct LRT : public torch::autograd::Function<LRT> {
  static variable_list forward(AutogradContext* ctx, Variable x, Variable weight, Variable log_sigma2,
                               std::optional<at::Tensor> bias, std::optional<at::Tensor> given_sigma2, bool conv, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    const bool computed = !given_sigma2.has_value();
    auto sigma2 = computed ? at::clamp_max(log_sigma2, LOG_SIGMA2_MAX).exp_() : *given_sigma2;
    auto x2 = x * x;
    at::Tensor mu, var;
    if (conv) {
      mu = at::conv2d(x, weight, bias, stride, padding, dilation, groups);
      var = at::conv2d(x2, sigma2, {}, stride, padding, dilation, groups);
    } else {
      mu = at::linear(x, weight, bias);
      var = at::linear(x2, sigma2);
    }
    auto std_ = var.clamp_min_(VAR_FLOOR).sqrt_();
    auto eps = at::randn_like(mu);
    auto out = mu.addcmul_(std_, eps);
    auto coef = eps.div_(std_);  // d out / d var = eps / (2 std); the 1/2 is applied in backward
    ctx->save_for_backward({x, x2, weight, sigma2, coef});
    ctx->saved_data["conv"] = conv;
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    if (!computed) return {out};
    ctx->mark_non_differentiable({sigma2});
    return {out, sigma2};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], x2 = saved[1], weight = saved[2], sigma2 = saved[3], coef = saved[4];
    auto grad = grads[0];
    variable_list out(10);
    if (!grad.defined()) return out;
    const bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1),
               need_ls2 = ctx->needs_input_grad(2),
               need_b = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(3);  // edges: tensors given
    auto grad_var = at::mul(grad, coef).mul_(0.5);
    if (ctx->saved_data["conv"].toBool()) {
      auto stride = ctx->saved_data["stride"].toIntVector();
      auto padding = ctx->saved_data["padding"].toIntVector();
      auto dilation = ctx->saved_data["dilation"].toIntVector();
      auto groups = ctx->saved_data["groups"].toInt();
      std::vector<int64_t> zeros(stride.size(), 0);
      auto mean = at::convolution_backward(grad, x, weight, std::nullopt, stride, padding, dilation,
                                           false, zeros, groups, {need_x, need_w, false});
      auto vari = at::convolution_backward(grad_var, x2, sigma2, std::nullopt, stride, padding, dilation,
                                           false, zeros, groups, {need_x, need_ls2, false});
      if (need_x) out[0] = at::addcmul(std::get<0>(mean), x, std::get<0>(vari), 2.0);
      if (need_w) out[1] = std::get<1>(mean);
      if (need_ls2) out[2] = std::get<1>(vari).mul_(sigma2);
      if (need_b) out[3] = grad.dim() == 4 ? grad.sum({0, 2, 3}) : grad.sum({1, 2});
    } else {
      auto g2 = grad.reshape({-1, grad.size(-1)}), v2 = grad_var.reshape({-1, grad.size(-1)});
      if (need_x) out[0] = at::addcmul(grad.matmul(weight), x, grad_var.matmul(sigma2), 2.0);
      if (need_w) out[1] = g2.t().mm(x.reshape({-1, x.size(-1)}));
      if (need_ls2) out[2] = v2.t().mm(x2.reshape({-1, x2.size(-1)})).mul_(sigma2);
      if (need_b) out[3] = g2.sum(0);
    }
    return out;
  }
};

std::vector<torch::Tensor> lrt(torch::Tensor x, torch::Tensor weight, torch::Tensor log_sigma2,
                               std::optional<torch::Tensor> bias, std::optional<torch::Tensor> sigma2,
                               bool conv, std::vector<int64_t> stride, std::vector<int64_t> padding,
                               std::vector<int64_t> dilation, int64_t groups) {
  return LRT::apply(x, weight, log_sigma2, bias, sigma2, conv, stride, padding, dilation, groups);
}

// A Sparse VD layer's whole train-mode forward on the CPU in one call: the fused KL pass (which also
// writes sigma^2) and then the LRT Function on that sigma^2. Returns (out, sigma^2, scale * dKL/dtheta,
// scale * dKL/dlog_sigma2, KL). theta and log_sigma2: contiguous float32 CPU tensors.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, double> train_forward(
    torch::Tensor x, torch::Tensor weight, torch::Tensor log_sigma2, std::optional<torch::Tensor> bias,
    double scale, bool conv, std::vector<int64_t> stride, std::vector<int64_t> padding,
    std::vector<int64_t> dilation, int64_t groups) {
  auto w = weight.detach(), l = log_sigma2.detach();
  auto gw = at::empty_like(w), gl = at::empty_like(w), sigma2 = at::empty_like(w);
  const double total = kl_fused({w}, {l}, {gw}, {gl}, {sigma2}, scale);
  auto outs = LRT::apply(x, weight, log_sigma2, bias, std::optional<torch::Tensor>(sigma2), conv, stride,
                         padding, dilation, groups);
  return {outs[0], sigma2, gw, gl, total};
}

"""

_STATE: dict = {}


def _setting() -> str:
    """"auto", "1" (on) or "0" (off), from $SPARSEVD_KERNELS (``sparsevd_lab.settings``)."""
    return {"auto": "auto", "on": "1", "off": "0"}[settings().kernels]


def _build():
    if "module" in _STATE:
        return _STATE["module"]
    module = None
    try:
        from torch.utils.cpp_extension import load_inline

        module = load_inline(
            "sparsevd_lab_kernels",
            cpp_sources=_SOURCE,
            functions=["kl_fused", "lrt", "train_forward", "sparse_mlp"],
            # -ffast-math lets gcc vectorise expf/logf through glibc's libmvec; the kernel keeps
            # every intermediate finite, as -ffast-math assumes
            extra_cflags=["-O3", "-march=native", "-ffast-math", "-fopenmp"],
            extra_ldflags=["-lmvec", "-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, no headers: fall back, say so once
        if _setting() == "1":
            raise RuntimeError(f"{ENV}=1 but sparsevd_lab's compiled kernels did not build: {err}") from err
        warnings.warn(f"sparsevd_lab: the compiled CPU kernels could not be built ({type(err).__name__}); "
                      f"using the pure-PyTorch paths (same results, slower on CPU). "
                      f"Set {ENV}=0 to silence this.", RuntimeWarning, stacklevel=3)
    _STATE["module"] = module
    return module


def kernels_enabled() -> bool:
    """True unless switched off by ``SPARSEVD_KERNELS=0`` or the build failed (builds on first call)."""
    return _setting() != "0" and _build() is not None


def fused_kl_enabled(tensors: list[Tensor]) -> bool:
    """True when the fused KL kernel applies to these tensors (float32, CPU, contiguous) and builds."""
    if _setting() == "0":
        return False
    if not all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in tensors):
        return False
    return _build() is not None


def fused_kl(weights: list[Tensor], log_sigma2s: list[Tensor],
             scale: float = 1.0) -> tuple[float, list[Tensor], list[Tensor]]:
    """(KL summed over all layers, scale * dKL/dtheta and scale * dKL/dlog_sigma2 per layer)."""
    module = _build()
    if module is None:
        raise RuntimeError("the fused KL kernel is not available here")
    with torch.no_grad():
        grad_w = [torch.empty_like(w) for w in weights]
        grad_ls2 = [torch.empty_like(w) for w in weights]
        total = module.kl_fused([w.detach() for w in weights], [p.detach() for p in log_sigma2s],
                                grad_w, grad_ls2, [], float(scale))  # []: no sigma^2 wanted
    return total, grad_w, grad_ls2


def lrt_enabled(x: Tensor, weight: Tensor) -> bool:
    """True when the compiled LRT Function applies (CPU tensors; not switched off; it builds)."""
    if x.device.type != "cpu" or weight.device.type != "cpu" or _setting() == "0":
        return False
    return _build() is not None


def _op_args(conv_args) -> tuple:
    """(conv, stride, padding, dilation, groups) as the C++ functions take them; None = linear."""
    if conv_args is None:
        return False, [], [], [], 1
    stride, padding, dilation, groups = conv_args
    return True, list(stride), list(padding), list(dilation), int(groups)


def train_forward(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None, scale: float,
                  conv_args=None):
    """A layer's train-mode forward in one compiled call: (out, sigma^2, scale * dKL/dtheta,
    scale * dKL/dlog_sigma2, KL as a float). The caller checks ``fused_kl_enabled([weight,
    log_sigma2])`` and numeric padding first."""
    return _build().train_forward(x, weight, log_sigma2, bias, float(scale), *_op_args(conv_args))


def lrt(x: Tensor, weight: Tensor, log_sigma2: Tensor, bias: Tensor | None,
        conv_args=None) -> tuple[Tensor, Tensor]:
    """(out, sigma^2) of the LRT forward (eq. 17) through the compiled autograd Function.
    ``conv_args`` = (stride, padding, dilation, groups) with numeric padding, or None for linear."""
    module = _build()
    if module is None:
        raise RuntimeError("the compiled LRT Function is not available here")
    out, sigma2 = module.lrt(x, weight, log_sigma2, bias, None, *_op_args(conv_args))
    return out, sigma2


_NONE = torch.empty(0)  # "no bias" / "every input feature" for the C++ sparse_mlp


def _inference_input_ok(x: Tensor) -> bool:
    """The sparse inference kernels take contiguous 2-d float32 CPU batches that need no gradient."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2 and x.is_contiguous()
            and not (torch.is_grad_enabled() and x.requires_grad) and kernels_enabled())


def sparse_mlp(x: Tensor, used: Tensor, crows, cols, values, biases, outs, relu) -> Tensor | None:
    """The output of a chain of CSR linear layers (with a ReLU after those flagged) for the input
    features ``used`` of ``x``, by the compiled kernel (float32, contiguous 2-d CPU input); None where
    it does not apply, so that the caller runs the layers one by one instead."""
    if not _inference_input_ok(x):
        return None
    return _build().sparse_mlp(x, used, list(crows), list(cols), list(values), list(biases),
                               [int(o) for o in outs], [bool(r) for r in relu])


def csr_linear(x: Tensor, crow: Tensor, col: Tensor, values: Tensor, bias: Tensor | None,
               out_features: int) -> Tensor | None:
    """x W^T + b for a CSR weight given as int32 ``crow``/``col`` and float32 ``values``: the
    one-layer case of ``sparse_mlp`` over every input feature. None where the kernel does not
    apply, so that the caller uses torch.sparse instead (the same result up to float rounding)."""
    return sparse_mlp(x, _NONE, [crow], [col], [values], [_NONE if bias is None else bias],
                      [out_features], [False])
