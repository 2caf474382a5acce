"""sparsevd_lab: Sparse Variational Dropout (Molchanov, Ashukha, Vetrov, ICML 2017) for teaching.

Modules, one job each: ``layers`` (LinearSVDO, Conv2dSVDO, kl_approx), ``objective`` (SGVLB, warm-up),
``train`` (fit), ``data`` (loaders), ``models`` (the paper's networks, from_dense), ``reports``
(sparsity tables).
"""
__version__ = "0.1.0"

from .data import (
    ChecksumError,
    DataBundle,
    DataError,
    OfflineError,
    TensorLoader,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    load_offline_digits,
    load_regression,
    load_sklearn_digits,
    random_labels,
)
from .layers import Conv2dSVDO, LinearSVDO, conv2d_svdo, kl_approx, linear_svdo, svdo_layers
from .models import build_model, from_dense, lenet5, lenet_300_100, mlp_regressor, vgg_like
from .objective import SGVLB, kl_warmup, model_kl
from .reports import compression_ratio, sparsity_report, sparsity_string
from .train import evaluate, fit, lr_factor, make_optimizer, resolve_device, set_seed
from .compress import (
    CompressedFileError,
    compress,
    file_size_report,
    flops_report,
    inference_layout,
    load_compressed,
    save_compressed,
)
from .pruning import magnitude_prune, make_permanent, match_svdo_sparsity, pruned_sparsity
