// The Python names of the compiled functions (train_step.cpp, sparse_inference.cpp).
#include <torch/extension.h>
#include <vector>

double kl_fused(std::vector<torch::Tensor> ws, std::vector<torch::Tensor> ls2s,
                std::vector<torch::Tensor> gws, std::vector<torch::Tensor> gls, double scale);
torch::Tensor lrt(torch::Tensor x, torch::Tensor weight, torch::Tensor log_sigma2,
                  std::optional<torch::Tensor> bias, bool conv, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups);
torch::Tensor sparse_mlp(torch::Tensor x, int64_t in_features, torch::Tensor used,
                         std::vector<torch::Tensor> crows, std::vector<torch::Tensor> cols,
                         std::vector<torch::Tensor> vals, std::vector<torch::Tensor> biases,
                         std::vector<int64_t> outs, std::vector<bool> relu);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("kl_fused", &kl_fused, "summed KL (eq. 14) and its scaled gradients, one pass");
  m.def("lrt", &lrt, "train-mode forward with the local reparameterisation trick (eq. 17)");
  m.def("sparse_mlp", &sparse_mlp, "inference of a chain of CSR linear layers");
}
