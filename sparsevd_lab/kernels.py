"""An optional fused CPU kernel for the KL term of Sparse VD (paper eq. 14) and its gradient.

Why: on a CPU training step of LeNet-300-100 at batch 100, the elementwise work of the KL over the
266,200 weights (two logs, two exponentials, a dozen arithmetic passes, each a trip through memory)
costs as much as the matmuls. One C++ loop does it in a single pass that reads theta and
log_sigma2 once and writes both gradients once. The same math as ``layers.kl_approx``.

It is compiled on first use with ``torch.utils.cpp_extension.load_inline`` (needs a C++ compiler and
``ninja``; about half a minute, then cached by torch in ~/.cache/torch_extensions). When it cannot be
built, or for tensors that are not float32 on the CPU, ``sparsevd_lab.layers`` uses its pure-PyTorch
path, which gives the same values. Switch it off with the environment variable
``SPARSEVD_FUSED_KL=0``; ``SPARSEVD_FUSED_KL=1`` makes a failed build an error instead of a warning.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

__all__ = ["fused_kl_enabled", "fused_kl"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

// Paper eq. 14 constants; LOG_SIGMA2_MAX and EPS as in sparsevd_lab/layers.py.
static const float K1 = 0.63576f, K2 = 1.87320f, K3 = 1.48695f;
static const float LOG_SIGMA2_MAX = 80.f, EPS = 1e-8f;

// Per weight: t = theta^2 + eps, log alpha = log sigma^2 - log t (eq. 15),
// s = sigmoid(k2 + k3 log alpha), q = 1 / (1 + alpha) = t / (t + sigma^2),
// KL = k1 (1 - s) + 0.5 log1p(1/alpha) = k1 (1 - s) + 0.5 (log(t + sigma^2) - log sigma^2)  (eq. 14),
// dKL/dlog_sigma2 = -0.5 base, dKL/dtheta = base * theta / t, base = q + 2 k1 k3 s (1 - s).
// The gradients are written multiplied by `scale`. __restrict lets gcc vectorise the loop, with
// glibc's vector expf/logf (-ffast-math); every intermediate stays finite, as -ffast-math assumes.
static float kl_block(const float* __restrict pw, const float* __restrict pl, float* __restrict pgw,
                      float* __restrict pgl, int64_t i0, int64_t i1, float scale) {
  float acc = 0.f;
  for (int64_t i = i0; i < i1; ++i) {
    const float wi = pw[i];
    const float t = wi * wi + EPS;
    const float c = pl[i] < LOG_SIGMA2_MAX ? pl[i] : LOG_SIGMA2_MAX;
    const float u = t + expf(c);
    const float la = pl[i] - logf(t);
    float z = -(K2 + K3 * la);
    z = z < 80.f ? (z > -80.f ? z : -80.f) : 80.f;
    const float e = expf(z);
    const float s = 1.f / (1.f + e);  // 1 - s = e s: no cancellation when s is close to 1
    acc += K1 * e * s + 0.5f * (logf(u) - c);
    const float base = t / u + 2.f * K1 * K3 * s * s * e;
    pgl[i] = -0.5f * scale * base;
    pgw[i] = scale * base * wi / t;
  }
  return acc;
}

double kl_fused(std::vector<torch::Tensor> ws, std::vector<torch::Tensor> ls2s,
                std::vector<torch::Tensor> gws, std::vector<torch::Tensor> gls, double scale) {
  double total = 0.0;
  for (size_t k = 0; k < ws.size(); ++k) {
    const float* pw = ws[k].data_ptr<float>();
    const float* pl = ls2s[k].data_ptr<float>();
    float* pgw = gws[k].data_ptr<float>();
    float* pgl = gls[k].data_ptr<float>();
    const int64_t n = ws[k].numel(), block = 4096, nblocks = (n + block - 1) / block;
    std::vector<double> partial(nblocks, 0.0);
    at::parallel_for(0, nblocks, 8, [&](int64_t b_begin, int64_t b_end) {
      for (int64_t b = b_begin; b < b_end; ++b) {
        partial[b] = kl_block(pw, pl, pgw, pgl, b * block, std::min(n, (b + 1) * block), (float)scale);
      }
    });
    for (double p : partial) total += p;
  }
  return total;
}
"""

_STATE: dict = {}


def _setting() -> str:
    value = os.environ.get("SPARSEVD_FUSED_KL", "auto").strip().lower()
    if value not in ("auto", "0", "1", "off", "on", "false", "true"):
        raise ValueError(f"SPARSEVD_FUSED_KL={value!r}: use auto, 1 or 0")
    return {"on": "1", "true": "1", "off": "0", "false": "0"}.get(value, value)


def _build():
    if "module" in _STATE:
        return _STATE["module"]
    module = None
    try:
        from torch.utils.cpp_extension import load_inline

        module = load_inline(
            "sparsevd_lab_fused_kl",
            cpp_sources=_SOURCE,
            functions=["kl_fused"],
            # -ffast-math lets gcc vectorise expf/logf through glibc's libmvec; the kernel keeps
            # every intermediate finite, as -ffast-math assumes
            extra_cflags=["-O3", "-march=native", "-ffast-math", "-fopenmp"],
            extra_ldflags=["-lmvec", "-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, no headers: fall back, say so once
        if _setting() == "1":
            raise RuntimeError(f"SPARSEVD_FUSED_KL=1 but the fused KL kernel did not build: {err}") from err
        warnings.warn(f"sparsevd_lab: the fused CPU KL kernel could not be built ({type(err).__name__}); "
                      f"using the pure-PyTorch path (same results, slower on CPU). "
                      f"Set SPARSEVD_FUSED_KL=0 to silence this.", RuntimeWarning, stacklevel=3)
    _STATE["module"] = module
    return module


def fused_kl_enabled(tensors: list[Tensor]) -> bool:
    """True when the fused kernel applies to these tensors (float32, CPU, contiguous) and builds."""
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
                                grad_w, grad_ls2, float(scale))
    return total, grad_w, grad_ls2
