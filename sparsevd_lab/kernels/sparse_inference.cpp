// Inference of a compressed chain of sparse linear layers (what Sparse VD leaves of LeNet-300-100):
// sparsevd_lab.compress.SparseMLP and, for one layer, SparseLinear. float32 CPU.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstring>
#include <vector>

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
