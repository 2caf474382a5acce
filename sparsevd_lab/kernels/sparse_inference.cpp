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

// The checks of every input: the loops below read x, used and each layer's CSR arrays by index
// without bounds checks, so a wrong width or a malformed CSR must stop here, not read out of bounds.
static void check_vector(const torch::Tensor& t, at::ScalarType dtype, const char* what, int64_t l) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == dtype && t.dim() == 1 && t.is_contiguous(),
              "sparse_mlp: ", what, " of layer ", l, " must be a contiguous 1-d ", dtype,
              " CPU tensor, got ", t.scalar_type(), " of shape ", t.sizes(), " on ", t.device(),
              (t.is_contiguous() ? "" : " (not contiguous)"));
}

// CSR layer l: crow (int32, out + 1 offsets from 0 to nnz, non-decreasing), col (int32, nnz indices
// into the layer's `width` inputs), val (float32, nnz), bias (float32, out, or empty).
static void check_layer(const torch::Tensor& crow, const torch::Tensor& col, const torch::Tensor& val,
                        const torch::Tensor& bias, int64_t out, int64_t width, int64_t l) {
  TORCH_CHECK(out >= 1, "sparse_mlp: layer ", l, " has ", out, " outputs; every layer needs at least one");
  check_vector(crow, at::kInt, "crow_indices", l);
  check_vector(col, at::kInt, "col_indices", l);
  check_vector(val, at::kFloat, "values", l);
  TORCH_CHECK(crow.numel() == out + 1, "sparse_mlp: crow_indices of layer ", l, " has ", crow.numel(),
              " entries for ", out, " outputs; a CSR matrix has one more than its rows");
  const int64_t nnz = col.numel();
  TORCH_CHECK(val.numel() == nnz, "sparse_mlp: layer ", l, " has ", nnz, " col_indices but ", val.numel(),
              " values");
  const int32_t* pr = crow.data_ptr<int32_t>();
  TORCH_CHECK(pr[0] == 0 && pr[out] == nnz, "sparse_mlp: crow_indices of layer ", l, " run from ", pr[0],
              " to ", pr[out], "; a CSR matrix's run from 0 to its ", nnz, " stored values");
  for (int64_t j = 0; j < out; ++j)
    TORCH_CHECK(pr[j] <= pr[j + 1], "sparse_mlp: crow_indices of layer ", l, " decrease at row ", j);
  const int32_t* pc = col.data_ptr<int32_t>();
  for (int64_t k = 0; k < nnz; ++k)
    TORCH_CHECK(pc[k] >= 0 && pc[k] < width, "sparse_mlp: col_indices of layer ", l, " holds ", pc[k],
                " but the layer has ", width, " inputs");
  if (bias.numel()) {
    check_vector(bias, at::kFloat, "bias", l);
    TORCH_CHECK(bias.numel() == out, "sparse_mlp: the bias of layer ", l, " has ", bias.numel(),
                " entries for ", out, " outputs");
  }
}

// A whole compressed MLP (what Sparse VD leaves of LeNet-300-100) in one pass: for eight input rows
// at a time, the used input features are gathered into a feature-major tile, then every layer
// (CSR weight, bias, optional ReLU) maps one tile to the next inside L1 cache; only the last layer
// writes memory. No intermediate tensors, no transposes, no per-layer dispatch. `in_features` is the
// width of x that the compressed layers were built for; `used` lists the input features the first
// layer reads (an empty `used` means every one of them: one layer of it is compress.SparseLinear).
torch::Tensor sparse_mlp(torch::Tensor x, int64_t in_features, torch::Tensor used,
                         std::vector<torch::Tensor> crows, std::vector<torch::Tensor> cols,
                         std::vector<torch::Tensor> vals, std::vector<torch::Tensor> biases,
                         std::vector<int64_t> outs, std::vector<bool> relu) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 2 && x.is_contiguous(),
              "sparse_mlp: x must be a contiguous 2-d float32 CPU tensor, got ", x.scalar_type(),
              " of shape ", x.sizes(), " on ", x.device(), (x.is_contiguous() ? "" : " (not contiguous)"));
  TORCH_CHECK(x.size(1) == in_features, "sparse_mlp: expected input of shape (N, ", in_features, "), got ",
              x.sizes(), "; this compressed model reads ", in_features,
              " input features (flatten images first, e.g. nn.Flatten())");
  const int64_t L = (int64_t)outs.size();
  TORCH_CHECK(L >= 1, "sparse_mlp: no layers given");
  TORCH_CHECK((int64_t)crows.size() == L && (int64_t)cols.size() == L && (int64_t)vals.size() == L &&
                  (int64_t)biases.size() == L && (int64_t)relu.size() == L,
              "sparse_mlp: one crow, col, values, bias and relu flag per layer: got ", crows.size(), ", ",
              cols.size(), ", ", vals.size(), ", ", biases.size(), ", ", relu.size(), " for ", L, " layers");
  const int64_t n = x.size(0), in = x.size(1);
  if (used.numel()) {
    check_vector(used, at::kInt, "used (input features)", 0);
    const int32_t* pu = used.data_ptr<int32_t>();
    for (int64_t u = 0; u < used.numel(); ++u)
      TORCH_CHECK(pu[u] >= 0 && pu[u] < in, "sparse_mlp: used input feature ", pu[u], " is not one of the ",
                  in, " columns of x");
  }
  const int64_t n_used = used.numel() ? used.numel() : in;
  for (int64_t l = 0; l < L; ++l)
    check_layer(crows[l], cols[l], vals[l], biases[l], outs[l], l == 0 ? n_used : outs[l - 1], l);
  int64_t widest = n_used;
  for (auto o : outs) widest = std::max(widest, o);
  auto y = torch::empty({n, outs.back()}, x.options());
  if (n == 0) return y;
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
