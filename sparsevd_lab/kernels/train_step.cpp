// The two hot spots of a Sparse VD training step on the CPU, compiled: the same formulas as
// sparsevd_lab/layers.py (the reference), tested equal to it in tests/test_kernels.py.
//
//   kl_fused: the KL approximation of eq. 14 summed over all weights, and its gradients, in one pass
//             that reads theta and log sigma^2 once and writes both gradients once;
//   lrt:      the train-mode forward of a layer with the local reparameterisation trick (eq. 17) as
//             a C++ autograd Function (no Python in its forward or backward pass).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <vector>

// eq. 14 constants; LOG_SIGMA2_MAX, EPS and VAR_FLOOR as in sparsevd_lab/layers.py.
static const double K1 = 0.63576, K2 = 1.87320, K3 = 1.48695;
static const double LOG_SIGMA2_MAX = 80.0, EPS = 1e-8, VAR_FLOOR = 1e-16;

static inline float as_float(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int32_t as_int(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

// exp(x) for x in [-87, 88] (callers clamp): x = n ln2 + r with |r| <= ln2/2, exp(r) by the Cephes
// expf polynomial, 2^n written into the exponent bits. Relative error ~2e-7. Inline, so that gcc
// vectorises the whole loop below (a libm call per element is ~1.5x slower here).
static inline float fexp(float x) {
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
static inline float flog(float x) {
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

// float64 uses the C library (vectorised by gcc through glibc's libmvec).
static inline double fexp(double x) { return std::exp(x); }
static inline double flog(double x) { return std::log(x); }

// Per weight: t = theta^2 + eps, c = min(log sigma^2, LOG_SIGMA2_MAX), sigma^2 = exp(c),
// log alpha = log sigma^2 - log t (eq. 15), s = sigmoid(k2 + k3 log alpha),
// KL = k1 (1 - s) + 0.5 log1p(1/alpha) = k1 (1 - s) + 0.5 (log(t + sigma^2) - c)  (eq. 14),
// dKL/dlog_sigma2 = -0.5 base, dKL/dtheta = base * theta / t, base = 1/(1 + alpha) + 2 k1 k3 s (1 - s).
// The gradients are written multiplied by `scale`. Every intermediate stays finite, as -ffast-math
// assumes (exp arguments are clamped; t >= eps).
template <typename T>
static double kl_block(const T* __restrict pw, const T* __restrict pl, T* __restrict pgw,
                       T* __restrict pgl, int64_t i0, int64_t i1, T scale) {
  const T k1 = K1, k2 = K2, k3 = K3, cmax = LOG_SIGMA2_MAX, eps = EPS;
  T acc = 0;
  for (int64_t i = i0; i < i1; ++i) {
    const T wi = pw[i];
    const T t = wi * wi + eps;
    const T c = pl[i] < cmax ? pl[i] : cmax;
    const T sigma2 = fexp(c > T(-87) ? c : T(-87));  // below e^-87 sigma^2 << t anyway
    const T u = t + sigma2;
    const T la = pl[i] - flog(t);
    T z = -(k2 + k3 * la);
    z = z < T(80) ? (z > T(-80) ? z : T(-80)) : T(80);
    const T e = fexp(z);
    const T s = T(1) / (T(1) + e);  // 1 - s = e s: no cancellation when s is close to 1
    acc += k1 * e * s + T(0.5) * (flog(u) - c);
    const T base = t / u + T(2) * k1 * k3 * s * s * e;
    pgl[i] = T(-0.5) * scale * base;
    pgw[i] = scale * base * wi / t;
  }
  return acc;
}

// Summed KL of all given layers; fills gws and gls with scale * gradients. float32 or float64 CPU
// contiguous tensors, all of one dtype; in each layer theta, log sigma^2 and both gradients have one
// shape (kl_block reads and writes them by one flat index).
double kl_fused(std::vector<torch::Tensor> ws, std::vector<torch::Tensor> ls2s,
                std::vector<torch::Tensor> gws, std::vector<torch::Tensor> gls, double scale) {
  TORCH_CHECK(ls2s.size() == ws.size() && gws.size() == ws.size() && gls.size() == ws.size(),
              "kl_fused: one log_sigma2 and two gradient tensors per weight: got ", ws.size(), " weights, ",
              ls2s.size(), " log_sigma2, ", gws.size(), " and ", gls.size(), " gradients");
  for (size_t k = 0; k < ws.size(); ++k) {
    const auto& w = ws[k];
    TORCH_CHECK(w.device().is_cpu() && (w.scalar_type() == at::kFloat || w.scalar_type() == at::kDouble),
                "kl_fused: weight ", k, " must be a float32 or float64 CPU tensor, got ", w.scalar_type(),
                " on ", w.device());
    const std::pair<const torch::Tensor*, const char*> others[] = {
        {&ls2s[k], "log_sigma2"}, {&gws[k], "the theta gradient"}, {&gls[k], "the log_sigma2 gradient"}};
    for (const auto& [t, what] : others) {
      TORCH_CHECK(t->sizes() == w.sizes(), "kl_fused: ", what, " of layer ", k, " has shape ", t->sizes(),
                  " but its weight (theta) has ", w.sizes(), "; they must match, entry for entry");
      TORCH_CHECK(t->scalar_type() == w.scalar_type() && t->device() == w.device(), "kl_fused: ", what,
                  " of layer ", k, " is ", t->scalar_type(), " on ", t->device(), ", its weight ",
                  w.scalar_type(), " on ", w.device(), "; give them one dtype and device");
    }
    const torch::Tensor* all[] = {&w, &ls2s[k], &gws[k], &gls[k]};
    for (const torch::Tensor* t : all)
      TORCH_CHECK(t->is_contiguous(), "kl_fused: the tensors of layer ", k, " must be contiguous");
  }
  double total = 0.0;
  for (size_t k = 0; k < ws.size(); ++k) {
    AT_DISPATCH_FLOATING_TYPES(ws[k].scalar_type(), "kl_fused", [&] {
      const scalar_t* pw = ws[k].data_ptr<scalar_t>();
      const scalar_t* pl = ls2s[k].data_ptr<scalar_t>();
      scalar_t* pgw = gws[k].data_ptr<scalar_t>();
      scalar_t* pgl = gls[k].data_ptr<scalar_t>();
      const int64_t n = ws[k].numel(), block = 4096, nblocks = (n + block - 1) / block;
      std::vector<double> partial(nblocks, 0.0);
      at::parallel_for(0, nblocks, 8, [&](int64_t b_begin, int64_t b_end) {
        for (int64_t b = b_begin; b < b_end; ++b) {
          const int64_t i0 = b * block, i1 = std::min(n, (b + 1) * block);
          partial[b] = kl_block<scalar_t>(pw, pl, pgw, pgl, i0, i1, (scalar_t)scale);
        }
      });
      for (double p : partial) total += p;
    });
  }
  return total;
}

// eq. 17 as an autograd Function, the same ops in the same order as layers.linear_svdo/conv2d_svdo
// (so the same random numbers):
//   sigma^2 = exp(min(log sigma^2, LOG_SIGMA2_MAX)), mu = op(x, theta) + b,
//   var = op(x*x, sigma^2) (no bias), out = mu + sqrt(max(var, VAR_FLOOR)) * eps
// with op linear, or conv2d when `conv` (the last line by `sample`). The backward is written out:
// d out/d mu = 1, d out/d var = eps / (2 std), and the two ops' own backward passes.
// The sampling step of eq. 17 and what its backward needs, in one pass over the outputs (four
// tensor operations in the reference): std = sqrt(max(var, VAR_FLOOR)), mu += std * eps (the
// sample), eps = eps / (2 std) (d sample / d var). Non-contiguous tensors take the same
// operations one by one.
static void sample(at::Tensor& mu, const at::Tensor& var, at::Tensor& eps) {
  if (!(mu.is_contiguous() && var.is_contiguous() && eps.is_contiguous())) {
    auto std_ = var.clamp_min(VAR_FLOOR).sqrt_();
    mu.addcmul_(std_, eps);
    eps.div_(std_).mul_(0.5);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES(mu.scalar_type(), "lrt_sample", [&] {
    scalar_t* pm = mu.data_ptr<scalar_t>();
    const scalar_t* pv = var.data_ptr<scalar_t>();
    scalar_t* pe = eps.data_ptr<scalar_t>();
    const scalar_t floor = VAR_FLOOR;
    at::parallel_for(0, mu.numel(), 32768, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t sd = std::sqrt(pv[i] > floor ? pv[i] : floor);
        pm[i] += sd * pe[i];
        pe[i] = scalar_t(0.5) * pe[i] / sd;
      }
    });
  });
}

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

struct LRT : public torch::autograd::Function<LRT> {
  static variable_list forward(AutogradContext* ctx, Variable x, Variable weight, Variable log_sigma2,
                               std::optional<at::Tensor> bias, bool conv, std::vector<int64_t> stride,
                               std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    auto sigma2 = at::clamp_max(log_sigma2, LOG_SIGMA2_MAX).exp_();
    auto x2 = x * x;
    at::Tensor mu, var;
    if (conv) {
      mu = at::conv2d(x, weight, bias, stride, padding, dilation, groups);
      var = at::conv2d(x2, sigma2, {}, stride, padding, dilation, groups);
    } else {
      mu = at::linear(x, weight, bias);
      var = at::linear(x2, sigma2);
    }
    auto eps = at::randn_like(mu);
    // in place, one pass: mu becomes out, eps becomes coef = d out / d var = eps / (2 std)
    sample(mu, var, eps);
    auto out = mu, coef = eps;
    ctx->save_for_backward({x, x2, weight, sigma2, coef});
    ctx->saved_data["conv"] = conv;
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], x2 = saved[1], weight = saved[2], sigma2 = saved[3], coef = saved[4];
    auto grad = grads[0];
    variable_list out(9);
    if (!grad.defined()) return out;
    const bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1),
               need_ls2 = ctx->needs_input_grad(2),
               need_b = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(3);
    auto grad_var = at::mul(grad, coef);
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
      if (need_ls2) out[2] = std::get<1>(vari).mul_(sigma2);  // d sigma^2 / d log sigma^2 = sigma^2
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

// Everything lrt is given, checked before any operation: at::linear/conv2d would catch most
// mismatches too, but with messages that name neither the layer's parameters nor the fix. Tensors
// need not be contiguous (every operation above takes any strides).
static void check_lrt(const torch::Tensor& x, const torch::Tensor& weight,
                      const torch::Tensor& log_sigma2, const std::optional<torch::Tensor>& bias, bool conv,
                      const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                      const std::vector<int64_t>& dilation, int64_t groups) {
  const auto dtype = weight.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "lrt: the weight (theta) must be float32 or float64, got ", dtype);
  for (const auto& [t, what] : {std::pair<const torch::Tensor*, const char*>{&x, "input"},
                                {&weight, "weight (theta)"}, {&log_sigma2, "log_sigma2"}})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == dtype, "lrt: the ", what, " is ",
                t->scalar_type(), " on ", t->device(), "; the layer's parameters are ", dtype,
                " on cpu: convert the input with .to(", dtype, ")");
  TORCH_CHECK(log_sigma2.sizes() == weight.sizes(), "lrt: log_sigma2 has shape ", log_sigma2.sizes(),
              " but the weight (theta) has ", weight.sizes(), "; they must match");
  if (bias.has_value()) {
    TORCH_CHECK(bias->device().is_cpu() && bias->scalar_type() == dtype && bias->dim() == 1 &&
                    bias->size(0) == weight.size(0),
                "lrt: the bias must be a 1-d ", dtype, " CPU tensor of ", weight.size(0), " entries, got ",
                bias->scalar_type(), " of shape ", bias->sizes(), " on ", bias->device());
  }
  if (!conv) {
    TORCH_CHECK(weight.dim() == 2, "lrt: a linear layer's weight is 2-d, got shape ", weight.sizes());
    TORCH_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "lrt: expected input of shape (..., ",
                weight.size(1), "), got ", x.sizes(), "; flatten images first (e.g. nn.Flatten())");
    return;
  }
  TORCH_CHECK(weight.dim() == 4, "lrt: a conv layer's weight is 4-d, got shape ", weight.sizes());
  TORCH_CHECK(groups >= 1 && weight.size(0) % groups == 0, "lrt: groups = ", groups,
              " must be >= 1 and divide the ", weight.size(0), " output channels");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "lrt: stride, padding and dilation are pairs, got ", stride.size(), ", ", padding.size(), " and ",
              dilation.size(), " numbers");
  for (int i = 0; i < 2; ++i)
    TORCH_CHECK(stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, "lrt: stride and dilation must be "
                ">= 1 and padding >= 0, got stride ", stride, ", padding ", padding, ", dilation ", dilation);
  TORCH_CHECK((x.dim() == 3 || x.dim() == 4) && x.size(-3) == weight.size(1) * groups,
              "lrt: expected input of shape (N, ", weight.size(1) * groups, ", H, W) or (",
              weight.size(1) * groups, ", H, W), got ", x.sizes());
}

torch::Tensor lrt(torch::Tensor x, torch::Tensor weight, torch::Tensor log_sigma2,
                  std::optional<torch::Tensor> bias, bool conv, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  check_lrt(x, weight, log_sigma2, bias, conv, stride, padding, dilation, groups);
  return LRT::apply(x, weight, log_sigma2, bias, conv, stride, padding, dilation, groups)[0];
}
