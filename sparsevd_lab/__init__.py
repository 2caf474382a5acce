"""sparsevd_lab: Sparse Variational Dropout (Molchanov, Ashukha, Vetrov, ICML 2017) for teaching.

The method, one job per module (``import sparsevd_lab`` loads these):
  ``layers``      LinearSVDO, Conv2dSVDO, linear_svdo, conv2d_svdo, kl_approx: the reference, read
                  beside the paper
  ``arguments``   the layers' argument checks (clear errors for bad sizes, thresholds, inputs)
  ``kernels``     the fast path: compiled CPU kernels for the same formulas (SPARSEVD_KERNELS=0: off)
  ``objective``   SGVLB, the KL warm-up
  ``train``       fit, evaluate, the authors' recipes
  ``data``        the data-set registry and loaders (no torchvision)
  ``models``      the paper's networks, from_dense
  ``reports``     sparsity and compression tables
  ``compression`` a trained model made small and fast for real (subpackage; ``sparsevd_lab.compress``
                  is its function), save/load
  ``pruning``     magnitude pruning, the baseline
  ``checkpoint``  resumable training runs
  ``files``       the atomic file write every module uses
  ``settings``    the SPARSEVD_* environment variables, read in one place

For the notebooks (imported by name): ``theory`` (closed forms and Monte Carlo), ``plots``,
``widgets``, ``checks`` (exercise checks), ``experiments`` (the paper's experiments, also
``python -m sparsevd_lab.experiments``), ``notebook`` (setup helpers; its executor,
``python -m sparsevd_lab.notebook``, needs the dev extra), ``assignments`` (builds the student
copies, ``python -m sparsevd_lab.assignments``), ``grading`` (nbgrader metadata for the built
notebooks; the ``grading`` extra), ``predictions`` (a student's predictions recorded
before the reveal; ``python -m sparsevd_lab.predictions report`` for the class); ``results/`` holds
the shipped results.
"""
__version__ = "0.2.0"

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
from .compression import (
    CompressedFileError,
    compress,
    file_size_report,
    flops_report,
    inference_layout,
    load_compressed,
    save_compressed,
)
from .pruning import magnitude_prune, make_permanent, match_svdo_sparsity, pruned_sparsity
