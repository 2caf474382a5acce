# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A2 · Compress a trained Sparse VD model for real (assignment)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/solutions/A2_compress_for_real.ipynb)
#
# A compression ratio of 55x is a count of weights. This assignment turns it into a file and a
# running time: you take the LeNet-300-100 trained with Sparse VD on Fashion-MNIST (shipped with the
# package), remove what it does not use, store the rest in CSR, and measure bytes on disk and
# inference time against the dense network, with a timer that is fair. Then you give magnitude
# pruning the same treatment at its own operating point.
#
# **Learning goals.** After this assignment you can
# 1. remove the dead units of a sparse network without changing its outputs (and say why a unit
#    with no incoming weight is *not* zero);
# 2. write a matrix in CSR by hand and count its bytes;
# 3. time inference fairly (warm-up, median of repeats) and explain why 55x fewer weights is not
#    55x faster;
# 4. compare two sparsification methods at their own operating points, not at the other's.
#
# **How to work.** Each exercise is a function with a gap marked `# YOUR CODE HERE`. Replace
# `raise NotImplementedError` with your code, run the cell, then run the check cell under it: it
# prints a line starting with `OK:` or says what is wrong. Do not rename the functions or their
# arguments. Questions marked **Predict** are for you to answer before you run the next cell. Words
# such as *compression*, *sparsity* and *threshold* are defined in the
# [glossary](../../docs/glossary.md).
#
# **Time on CPU:** the whole notebook runs in about 2 minutes (only the pruning baseline is fine-tuned; fast mode,
# `SPARSEVD_FAST=1`, uses 2,000 test images and fewer timing repeats). Plan 90 minutes for the
# seven exercises and the questions.
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (sec. 4.3: weights with $\log\alpha \ge 3$ are removed); Han, Pool, Tran, Dally,
# [*Learning both Weights and Connections for Efficient Neural Networks*](https://arxiv.org/abs/1506.02626),
# NeurIPS 2015 (magnitude pruning); Han, Mao, Dally, [*Deep Compression*](https://arxiv.org/abs/1510.00149),
# ICLR 2016 (CSR storage with small indices).

# %%
# Setup: on Colab, install the package first; anywhere else, use the installed one.
import sys

MIN_VERSION = "0.2.0"
if "google.colab" in sys.modules:
    get_ipython().run_line_magic(  # noqa: F821  (this is %pip install)
        "pip", 'install -q "sparsevd-lab @ git+https://github.com/sparsevd-lab/sparsevd-lab"')
try:
    from sparsevd_lab import notebook as nb
except ImportError as err:
    raise ImportError(
        f"sparsevd_lab is missing or older than {MIN_VERSION} ({err}). Install it with "
        '`pip install "sparsevd-lab @ git+https://github.com/sparsevd-lab/sparsevd-lab"` '
        "(or `pip install -e .` in a clone of the repository), then restart the kernel.") from None
nb.require(MIN_VERSION)

import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import sparsevd_lab
from sparsevd_lab import checks, experiments

warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # torch: "sparse CSR support is in beta"

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE). Fast mode (CI) uses part of the test set and fewer repeats.
FAST = nb.mode() == "fast"
N_TEST = 2000 if FAST else None  # test images used (None: all 10,000)
N_TRAIN = 5000 if FAST else None  # training images for the pruning baseline's fine-tuning (None: all)
REPEATS = 7 if FAST else 15  # timed calls per measurement (after 3 warm-up calls)
ROUNDS = 1 if FAST else 5  # measurements per network, taken in turns with the other networks
THREADS = 1  # torch threads for the timings: one, so that the comparison does not depend on the machine's load
SEED = 0

# %% [markdown]
# ## 0. The trained models
#
# Two LeNet-300-100 (784-300-100-10, layers `fc1`, `fc2`, `fc3`) trained for 200 epochs on
# Fashion-MNIST with the paper's recipe, shipped in `sparsevd_lab/results/models/`: a dense one and a
# Sparse VD one (`python -m sparsevd_lab.experiments lenet300 --dataset fashion-mnist` made both).
# The test images come from Debian's `dataset-fashion-mnist` package or a download. Without them,
# the next cell says so and trains both models on the 5,000 offline digits instead (a few minutes).

# %%
def load_models():
    """(data, dense model, Sparse VD model): the shipped Fashion-MNIST ones, else trained live."""
    try:
        nb.check_data("fashion-mnist")
        data = sparsevd_lab.load_fashion_mnist()
        dense = experiments.load_model("lenet300", "fashion-mnist", method="dense")
        svdo = experiments.load_model("lenet300", "fashion-mnist", method="sparse-vd")
        return data, dense, svdo
    except (RuntimeError, OSError, ValueError) as err:
        print(f"FALLBACK: Fashion-MNIST or the shipped models are not available ({err}).\n"
              f"Training both models on the offline digits instead; the numbers will differ from "
              f"the ones in the lecturers' guide.")
    data = sparsevd_lab.load_offline_digits()
    epochs = 3 if FAST else 30
    dense = sparsevd_lab.lenet_300_100(svdo=False)
    sparsevd_lab.fit(dense, data, epochs=epochs, seed=SEED, progress=False)
    svdo = sparsevd_lab.lenet_300_100(svdo=True)
    sparsevd_lab.fit(svdo, data, epochs=epochs, seed=SEED, progress=False)
    return data, dense.eval(), svdo.eval()


data, dense_model, svdo_model = load_models()
if N_TEST is not None or N_TRAIN is not None:
    data = data.subset(N_TRAIN, N_TEST)
x_test, y_test = data.x_test.flatten(1), data.y_test
print(f"{len(x_test):,} test images of {data.name}")


# %%
@torch.no_grad()
def error_pct(net, x=None):
    """Test error in % of a network (anything that maps a (batch, 784) tensor to logits)."""
    x = x_test if x is None else x
    logits = torch.cat([net(x[i:i + 2000]) for i in range(0, len(x), 2000)])
    return 100 * float((logits.argmax(1) != y_test).float().mean())


NAMES = ["fc1", "fc2", "fc3"]
svdo_layers = [m for m in svdo_model.modules() if isinstance(m, sparsevd_lab.LinearSVDO)]
dense_layers = [m for m in dense_model.modules() if isinstance(m, nn.Linear)]
# The Sparse VD net as eval mode uses it: theta with the weights of log alpha >= threshold set to 0.
masked_w = [(m.weight * (m.log_alpha < m.threshold)).detach() for m in svdo_layers]
masked_b = [m.bias.detach().clone() for m in svdo_layers]
dense_w = [m.weight.detach().clone() for m in dense_layers]
dense_b = [m.bias.detach().clone() for m in dense_layers]

kept = [int((w != 0).sum()) for w in masked_w]
total = sum(w.numel() for w in masked_w)
pd.DataFrame({"shape": [tuple(w.shape) for w in masked_w], "weights": [w.numel() for w in masked_w],
              "kept": kept, "sparsity_%": [100 * (1 - k / w.numel()) for k, w in zip(kept, masked_w)]},
             index=NAMES).round(1)

# %%
svdo_error, dense_error = error_pct(svdo_model), error_pct(dense_model)
print(f"dense: test error {dense_error:.2f} %  |  Sparse VD: {svdo_error:.2f} % with "
      f"{sum(kept):,} of {total:,} weights kept, compression {total / sum(kept):.1f}x")


# %% [markdown]
# ## 1. Dead units
#
# A hidden unit can go away in two ways.
# - **No kept incoming weight.** Its pre-activation is its bias $b_j$, so it outputs the *constant*
#   $\mathrm{relu}(b_j)$, which is not 0 when $b_j > 0$. Fold the constant into the next layer: add
#   $W_{\text{next}}[:, j]\,\mathrm{relu}(b_j)$ to the next bias, then remove the unit. A unit whose
#   inputs all were such constants becomes constant itself: go through the layers from the input side.
# - **No kept outgoing weight.** Nothing reads it: remove it with its incoming weights. That can leave a
#   unit of the layer before with no reader: go through the layers from the output side.
#
# Input pixels that no kept weight of `fc1` reads are not needed either: return their indices as
# `inputs`, and the small net reads `x[:, inputs]`. The output layer keeps all 10 units.
#
# **Exercise 1** (15 minutes). Write `remove_dead_units(weights, biases)` for a chain
# relu(W1 x + b1) → relu(W2 h + b2) → W3 h + b3 (lists; dropped weights are 0). Return
# `(weights, biases, inputs)` of the smaller net; do not change the lists you are given.
#
# **Predict** before you run the cell after the check: of `fc1`'s 300 units and of the 784 pixels,
# how many survive (a tenth, a third, two thirds)?

# %%
def remove_dead_units(weights, biases):
    """The net without dead units: its outputs on x[:, inputs] equal the masked net's on x."""
    ### BEGIN SOLUTION
    W = [w.clone() for w in weights]
    b = [v.clone() for v in biases]
    keep = [torch.ones(w.shape[0], dtype=torch.bool) for w in W[:-1]]
    for i in range(len(W) - 1):  # input side first: constant units fold into the next bias
        no_input = (W[i] != 0).sum(1) == 0
        b[i + 1] = b[i + 1] + W[i + 1] @ (torch.relu(b[i]) * no_input)
        W[i + 1][:, no_input] = 0
        keep[i] &= ~no_input
    for i in range(len(W) - 2, -1, -1):  # output side first: units nobody reads
        keep[i] &= (W[i + 1] != 0).sum(0) > 0
        W[i][~keep[i]] = 0
    inputs = torch.nonzero((W[0] != 0).sum(0) > 0).flatten()
    new_w = [W[0][keep[0]][:, inputs]]
    new_w += [W[i][keep[i]][:, keep[i - 1]] for i in range(1, len(W) - 1)]
    new_w.append(W[-1][:, keep[-1]])
    new_b = [b[i][keep[i]] for i in range(len(W) - 1)] + [b[-1]]
    return new_w, new_b, inputs
    ### END SOLUTION


# %%
checks.check_remove_dead_units(remove_dead_units)

# %%
def run_chain(weights, biases, x):
    """relu(W1 x + b1) -> relu(W2 h + b2) -> W3 h + b3, the LeNet-300-100 chain."""
    for i, (w, b) in enumerate(zip(weights, biases)):
        x = F.linear(x, w, b)
        x = torch.relu(x) if i < len(weights) - 1 else x
    return x


svd_w, svd_b, svd_inputs = remove_dead_units(masked_w, masked_b)
with torch.no_grad():
    gap = (run_chain(svd_w, svd_b, x_test[:, svd_inputs]) - svdo_model(x_test)).abs().max()
sizes = [len(svd_inputs)] + [w.shape[0] for w in svd_w]
print(f"784-300-100-10 -> {'-'.join(map(str, sizes))}; largest output difference to the Sparse VD "
      f"model {float(gap):.1e}")


# %% [markdown]
# ## 2. CSR by hand
#
# Compressed sparse row (CSR) stores a matrix by its nonzeros, row by row: `values`, the column
# number of each (`col_index`), and `row_ptr` with rows + 1 entries, so that row $i$'s entries are
# `values[row_ptr[i]:row_ptr[i+1]]` (`row_ptr[0] = 0`, `row_ptr[-1]` = the number of nonzeros; an
# empty row has two equal pointers). For example:
#
# ```
# w = [[0, 5, 0],        values    = [5, 7, 8]
#      [0, 0, 0],        col_index = [1, 0, 2]
#      [7, 0, 8]]        row_ptr   = [0, 1, 1, 3]
# ```
#
# **Exercise 2** (10 minutes). Write `to_csr(w)` for a 2-D tensor `w`, returning three numpy
# arrays or tensors. Do it by hand (loops or numpy), not with `to_sparse_csr()`: the check compares
# with it.

# %%
def to_csr(w):
    """(values, col_index, row_ptr) of the 2-D tensor w, row by row."""
    ### BEGIN SOLUTION
    w = w.detach().cpu().numpy()
    rows, cols = np.nonzero(w)  # row-major order: row by row, columns ascending
    counts = np.bincount(rows, minlength=w.shape[0])
    row_ptr = np.concatenate([[0], np.cumsum(counts)])
    return w[rows, cols], cols, row_ptr
    ### END SOLUTION


# %%
checks.check_to_csr(to_csr)

# %% [markdown]
# ## 3. A layer that stores only CSR
#
# **Exercise 3** (10 minutes). Write `CSRLinear(weight, bias)`, an `nn.Module` that keeps only the CSR
# arrays of `weight` (from your `to_csr`) and the bias, and computes `x @ weight.T + bias`. Hint:
# `torch.sparse_csr_tensor(row_ptr, col_index, values, size)` wraps your arrays (indices as int64)
# without copying the matrix into dense form, and `W @ x.T` multiplies it with a dense matrix.

# %%
class CSRLinear(nn.Module):
    """A linear layer whose weight lives in CSR form only."""

    def __init__(self, weight, bias):
        super().__init__()
        ### BEGIN SOLUTION
        values, cols, row_ptr = to_csr(weight)
        self.weight = torch.sparse_csr_tensor(
            torch.as_tensor(row_ptr, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64),
            torch.as_tensor(values, dtype=torch.float32), size=tuple(weight.shape))
        self.bias = bias.detach().clone()
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return (self.weight @ x.t()).t() + self.bias
        ### END SOLUTION


# %%
checks.check_csr_linear(CSRLinear)


# %% [markdown]
# The whole compressed net: pick the used pixels, then three CSR layers.

# %%
class CSRNet(nn.Module):
    """x[:, inputs] -> CSRLinear -> ReLU -> CSRLinear -> ReLU -> CSRLinear."""

    def __init__(self, weights, biases, inputs):
        super().__init__()
        self.inputs = inputs
        self.layers = nn.ModuleList(CSRLinear(w, b) for w, b in zip(weights, biases))

    def forward(self, x):
        x = x.flatten(1)[:, self.inputs]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            x = torch.relu(x) if i < len(self.layers) - 1 else x
        return x


svd_net = CSRNet(svd_w, svd_b, svd_inputs)
print(f"CSR net: test error {error_pct(svd_net):.2f} % (the Sparse VD model: {svdo_error:.2f} %)")


# %% [markdown]
# ## 4. Bytes on disk
#
# A CSR matrix costs 4 bytes per kept value (float32), plus one column number per kept value, plus
# rows + 1 row pointers. An index needs no more bits than its largest value: `fc1`'s column numbers
# are below 784, so `uint16` (2 bytes) holds them, where `int64` would take 8.
#
# **Exercise 4** (5 minutes). Write `csr_nbytes(n_rows, n_cols, nnz)`: float32 values, column numbers
# in the smallest of `uint8`, `uint16`, `uint32` that holds `n_cols - 1`, row pointers in the smallest
# that holds `nnz`.
#
# **Predict** before you run the cell after the check: with 55x fewer weights, is the file 55x
# smaller than the dense one, more, or less?

# %%
def csr_nbytes(n_rows, n_cols, nnz):
    """Bytes of a CSR matrix: float32 values and the smallest unsigned index types."""
    ### BEGIN SOLUTION
    def smallest(max_value):
        return next(np.dtype(t).itemsize for t in (np.uint8, np.uint16, np.uint32)
                    if max_value <= np.iinfo(t).max)
    return nnz * 4 + nnz * smallest(n_cols - 1) + (n_rows + 1) * smallest(nnz)
    ### END SOLUTION


# %%
checks.check_csr_nbytes(csr_nbytes)


# %% [markdown]
# Now write real files (`numpy.savez`, uncompressed, each array with the smallest dtype) and measure
# them: the dense net's weights and biases, and the CSR net.

# %%
def smallest_uint(max_value):
    return next(t for t in (np.uint8, np.uint16, np.uint32) if max_value <= np.iinfo(t).max)


def save_dense(path, weights, biases):
    arrays = {}
    for name, w, b in zip(NAMES, weights, biases):
        arrays[f"{name}_weight"], arrays[f"{name}_bias"] = w.numpy(), b.numpy()
    np.savez(path, **arrays)
    return os.path.getsize(path)


def save_csr(path, weights, biases, inputs):
    arrays = {"inputs": inputs.numpy().astype(smallest_uint(783))}
    for name, w, b in zip(NAMES, weights, biases):
        values, cols, row_ptr = to_csr(w)
        arrays[f"{name}_values"] = values.astype(np.float32)
        arrays[f"{name}_col_index"] = cols.astype(smallest_uint(max(w.shape[1] - 1, 0)))
        arrays[f"{name}_row_ptr"] = row_ptr.astype(smallest_uint(len(values)))
        arrays[f"{name}_bias"] = b.numpy()
        arrays[f"{name}_shape"] = np.array(w.shape, np.uint16)
    np.savez(path, **arrays)
    return os.path.getsize(path)


folder = tempfile.mkdtemp(prefix="a2_")
dense_bytes = save_dense(os.path.join(folder, "dense.npz"), dense_w, dense_b)
svd_bytes = save_csr(os.path.join(folder, "sparse_vd_csr.npz"), svd_w, svd_b, svd_inputs)
predicted = sum(csr_nbytes(w.shape[0], w.shape[1], int((w != 0).sum())) + 4 * len(b)
                for w, b in zip(svd_w, svd_b)) + 2 * len(svd_inputs)
print(f"dense file {dense_bytes:,} bytes; CSR file {svd_bytes:,} bytes "
      f"({dense_bytes / svd_bytes:.1f}x smaller); your csr_nbytes + biases + inputs predicted "
      f"{predicted:,} (the rest is the .npz headers)")

# %% [markdown]
# For comparison, the package's own `sparsevd_lab.compress` (dead units removed, constants folded)
# and `save_compressed` (safetensors, smallest index types) on the same model:

# %%
package_net = sparsevd_lab.compress(svdo_model, storage="sparse")
package_bytes = os.path.getsize(sparsevd_lab.save_compressed(package_net, os.path.join(folder, "package.safetensors")))
print(f"package: {package_bytes:,} bytes, test error {error_pct(package_net):.2f} %")


# %% [markdown]
# ## 5. A fair timer
#
# One call of a small network takes microseconds to milliseconds, and its first calls are slower
# (memory allocation, caches, lazy set-up). Another process can stall any call. A fair timer
# therefore calls the function a few times untimed (warm-up), then times `repeats` calls one by one
# with `time.perf_counter()` and reports the **median**, which one slow call cannot move.
#
# **Exercise 5** (10 minutes). Write `median_time(f, x, warmup=3, repeats=21)`: seconds per call of
# `f(x)`, the median of the timed calls.

# %%
def median_time(f, x, warmup=3, repeats=21):
    """Median seconds of one call f(x), after `warmup` untimed calls."""
    ### BEGIN SOLUTION
    for _ in range(warmup):
        f(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
    ### END SOLUTION


# %%
checks.check_median_time(median_time)

# %% [markdown]
# Time the dense net, the masked Sparse VD net (zeros still stored and multiplied: the same code as
# the dense net, other numbers), your CSR net and the package's compressed model, one image at a time
# and in batches of 1,000, with gradients off and one thread. The load of a shared machine changes
# from second to second, so the networks take turns: `ROUNDS` rounds, each timing every network with
# your `median_time`, and each network's time is the median of its rounds.
#
# **Predict**: is your CSR net 55x faster than the dense one? Faster at batch 1 or at batch 1,000?

# %%
def dense_net(x):
    return run_chain(dense_w, dense_b, x.flatten(1))


def masked_net(x):
    return run_chain(masked_w, masked_b, x.flatten(1))


nets = {"dense": dense_net, "Sparse VD, masked dense": masked_net,
        "Sparse VD, your CSR net": svd_net, "Sparse VD, sparsevd_lab.compress": package_net}
@torch.no_grad()
def time_in_turns(nets, batches=(1, 1000)):
    """{batch: {name: ms}}: the median over ROUNDS rounds of median_time, the networks in turns."""
    torch.set_num_threads(THREADS)
    result = {}
    for batch in batches:
        x = x_test[:batch]
        rounds = {name: [] for name in nets}
        for _ in range(ROUNDS):
            for name, net in nets.items():
                rounds[name].append(1000 * median_time(net, x, repeats=REPEATS))
        result[batch] = {name: statistics.median(ms) for name, ms in rounds.items()}
    return result


timings = time_in_turns(nets)
speed = pd.DataFrame({f"ms, batch {b}": t for b, t in timings.items()})
for b in timings:
    speed[f"speed-up, batch {b}"] = speed.loc["dense", f"ms, batch {b}"] / speed[f"ms, batch {b}"]
speed.round(3)


# %% [markdown]
# ## 6. Magnitude pruning at its own operating point
#
# The baseline: take the dense net, drop its smallest weights (Han et al. 2015), and fine-tune the
# rest for one epoch with the dropped weights held at 0. Comparing at Sparse VD's sparsity would be
# unfair to pruning (it loses accuracy there); the fair question is how far pruning can go for the
# same test error. Its **operating point** is the highest sparsity whose error stays within a
# budget: here Sparse VD's own test error. (We pick it on the test set, which flatters pruning a
# little; the shipped results use a validation split.)
#
# **Exercise 6** (10 minutes). Write `magnitude_masks(weights, sparsity)`: one boolean mask per layer
# (True = kept) that drops the `round(sparsity * total)` weights of smallest $|w|$ over all layers
# together (global pruning; `torch.kthvalue` finds the cut).

# %%
def magnitude_masks(weights, sparsity):
    """Global magnitude pruning: masks (True = kept) without the smallest |w| over all layers."""
    ### BEGIN SOLUTION
    flat = torch.cat([w.abs().flatten() for w in weights])
    k = round(sparsity * flat.numel())
    if k == 0:
        return [torch.ones_like(w, dtype=torch.bool) for w in weights]
    cut = flat.kthvalue(k).values
    return [w.abs() > cut for w in weights]
    ### END SOLUTION


# %%
checks.check_magnitude_masks(magnitude_masks)

# %% [markdown]
# **Exercise 7** (5 minutes). Write `operating_point(sparsities, errors, budget)`: the highest
# sparsity whose error is within the budget (error $\le$ budget), or `None`. Errors are noisy: a
# sparsity over budget can be followed by one within it.

# %%
def operating_point(sparsities, errors, budget):
    """The highest sparsity with error <= budget, None if there is none."""
    ### BEGIN SOLUTION
    within = [s for s, e in zip(sparsities, errors) if e <= budget]
    return max(within) if within else None
    ### END SOLUTION


# %%
checks.check_operating_point(operating_point)

# %% [markdown]
# Prune the dense net at each sparsity, measure the error, fine-tune one epoch (Adam, learning rate
# 1e-3, the masks applied after every step), measure again. About 5 s per sparsity on one thread.

# %%
SPARSITIES = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98]


def prune_and_fine_tune(sparsity, epochs=1):
    masks = magnitude_masks(dense_w, sparsity)
    weights = [(w * m).requires_grad_() for w, m in zip(dense_w, masks)]
    biases = [b.clone().requires_grad_() for b in dense_b]
    one_shot = error_pct(lambda x: run_chain(weights, biases, x))
    optimizer = torch.optim.Adam(weights + biases, lr=1e-3)
    train_loader, _ = data.loaders(100, seed=SEED)
    for _ in range(epochs):
        for x, y in train_loader:
            loss = F.cross_entropy(run_chain(weights, biases, x.flatten(1)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for w, m in zip(weights, masks):
                    w.mul_(m)
    weights = [w.detach() for w in weights]
    biases = [b.detach() for b in biases]
    return one_shot, error_pct(lambda x: run_chain(weights, biases, x)), weights, biases


torch.manual_seed(SEED)
runs = {s: prune_and_fine_tune(s) for s in SPARSITIES}
curve = pd.DataFrame({"sparsity": SPARSITIES, "error_%, one-shot": [runs[s][0] for s in SPARSITIES],
                      "error_%, fine-tuned": [runs[s][1] for s in SPARSITIES]})
best = operating_point(curve["sparsity"], curve["error_%, fine-tuned"], svdo_error)
print(f"budget: Sparse VD's test error {svdo_error:.2f} %; magnitude pruning's operating point: "
      f"sparsity {best} ({1 / (1 - best):.1f}x)")
curve.set_index("sparsity").T.round(2)

# %%
mp_w, mp_b, mp_inputs = remove_dead_units(runs[best][2], runs[best][3])
mp_net = CSRNet(mp_w, mp_b, mp_inputs)
mp_bytes = save_csr(os.path.join(folder, "pruned_csr.npz"), mp_w, mp_b, mp_inputs)
print(f"magnitude pruning at sparsity {best}, fine-tuned: "
      f"{'-'.join(map(str, [len(mp_inputs)] + [w.shape[0] for w in mp_w]))} units, "
      f"error {error_pct(mp_net):.2f} %, {mp_bytes:,} bytes")

# %% [markdown]
# ## 7. The comparison
#
# One row per model: test error, kept weights (those the small net stores: removing an unread unit
# also removes its incoming weights, so this can be a few below the mask's count), compression
# (total / kept weights), bytes on disk, and the median time of one batch, the three networks timed
# again in turns. Read it against the research questions below.

# %%
final = time_in_turns({"dense": dense_net, "Sparse VD": svd_net, "pruning": mp_net})


def row(name, key, error, kept_weights, nbytes):
    return {"model": name, "error_%": error, "kept": kept_weights,
            "compression": total / kept_weights, "bytes": nbytes, "bytes_ratio_x": dense_bytes / nbytes,
            "ms_batch_1": final[1][key], "ms_batch_1000": final[1000][key],
            "speed-up_batch_1000": final[1000]["dense"] / final[1000][key]}


summary = pd.DataFrame([
    row("dense", "dense", dense_error, total, dense_bytes),
    row("Sparse VD, CSR", "Sparse VD", error_pct(svd_net), sum(int((w != 0).sum()) for w in svd_w),
        svd_bytes),
    row(f"magnitude pruning {best} + fine-tuning, CSR", "pruning", error_pct(mp_net),
        sum(int((w != 0).sum()) for w in mp_w), mp_bytes),
]).set_index("model")
summary.round(2)

# %% [markdown]
# The same three rows drawn: each model's bytes on disk and its time per batch against the weights it
# keeps, both axes logarithmic. The dotted line through the dense net has slope 1: a model on it would
# save exactly in proportion to the weights it drops.

# %%
import matplotlib.pyplot as plt  # noqa: E402  (the figure of this section)

from sparsevd_lab import plots  # noqa: E402

plots.use_style()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
panels = [("bytes", "file size (bytes, log scale)", "Bytes on disk"),
          ("ms_batch_1000", "ms per batch (log scale)", "Time: batch 1,000 (dots), batch 1 (squares)")]
for ax, (col, ylabel, title) in zip(axes, panels):
    kept_w, value = summary["kept"].to_numpy(float), summary[col].to_numpy(float)
    k_line = np.geomspace(kept_w.min() / 2, total, 20)
    ax.plot(k_line, summary.loc["dense", col] * k_line / total, ":", color="0.5",
            label="proportional to the kept weights")
    for (name, r), colour in zip(summary.iterrows(), plots.PALETTE):
        ax.plot(r["kept"], r[col], "o", ms=9, color=colour, label=name)
        if col == "ms_batch_1000":  # batch 1 as a hollow marker: fixed costs dominate there
            ax.plot(r["kept"], r["ms_batch_1"], "s", ms=8, mew=1.8, mfc="none", color=colour)
    ax.set(xscale="log", yscale="log", xlabel="kept weights (log scale)", ylabel=ylabel, title=title)
axes[0].plot([], [], "s", mfc="none", color="0.3", label="batch 1 (right panel, hollow squares)")
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize="small")
fig.tight_layout(rect=(0, 0.14, 1, 1))  # room for the legend under the panels, off the points
plt.show()

# %% [markdown]
# The shipped result file also has magnitude pruning *with* fine-tuning (`sparsevd_lab/results/lenet300_fashion-mnist.json`,
# 200-epoch runs): at Sparse VD's per-layer sparsity, and iteratively at its own operating point.

# %%
shipped = experiments.result_frame(experiments.load_result("lenet300", "fashion-mnist"))
shipped.set_index("method")[["error_%", "sparsity_per_layer", "compression"]].round(2)

# %% [markdown]
# ## Research questions
#
# Answer each in two or three sentences, with the numbers of this notebook.
#
# 1. **Bytes.** The file of the Sparse VD net is smaller than the dense one by a factor below its
#    compression. Why? At what density (kept / total) would CSR with `uint16` column numbers stop
#    being smaller than the dense matrix?
#
# ### BEGIN SOLUTION
# Each kept weight costs 4 value bytes plus 2 column bytes, against 4 bytes per weight in the dense
# matrix; the row pointers and biases add a little, and removing dead units (fewer rows, fewer
# pointers) takes a little back. So the file ratio is about compression x 4/6. CSR stops paying at
# density 4/6 = 2/3 (plus the pointers): most weights must be gone before sparse storage helps.
# ### END SOLUTION
#
# 2. **Time.** Why is the CSR net not 55x faster than the dense one? Where is the gap largest, at
#    batch 1 or 1,000, and why?
#
# ### BEGIN SOLUTION
# A dense matrix product runs at close to the machine's peak with vectorised, cache-friendly loops; a
# sparse product reads an index per value and jumps through memory, so each kept weight costs several
# times a dense one. At batch 1 the fixed cost of each call (Python, the dispatcher, three small
# layers) dominates both nets, so the speed-up is smallest there (below 1: the sparse call has more
# overhead); at batch 1,000 the arithmetic dominates and the removed weights and units show. The
# package's `compress` does better than a plain CSR net: it times dense against sparse storage for
# each layer and keeps the faster.
# ### END SOLUTION
#
# 3. **The masked dense net.** Is the masked Sparse VD net (zeros stored) faster than the dense net?
#    What does that tell you about claims of speed from sparsity?
#
# ### BEGIN SOLUTION
# Not beyond the timing noise: a dense matrix product multiplies by zero at the same cost as by
# anything else. Sparsity saves time only when the format skips the zeros (CSR) or the zeros form
# whole units that can be removed.
# ### END SOLUTION
#
# 4. **Magnitude pruning.** At the same test error, how do magnitude pruning's compression, bytes and
#    time compare with Sparse VD's? Would longer fine-tuning change the picture (see the shipped rows)?
#
# ### BEGIN SOLUTION
# Within Sparse VD's error, pruning with one epoch of fine-tuning reaches only about half of the
# weights removed, where Sparse VD removed 98 %. At that density CSR is the wrong format (question 1:
# above 2/3 it is larger than dense, and near 1/2 it saves little), so its file is many times larger
# than Sparse VD's and its CSR net is slower than the dense one. The shipped 200-epoch results say
# the same with much more fine-tuning: the iterative run stays within its validation budget only at
# 2x, and pruning to Sparse VD's per-layer sparsity costs several points of error.
# ### END SOLUTION

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
