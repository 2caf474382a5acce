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
# # 06 · Compression tables: the KL weight and the threshold
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/06_compression_tables.ipynb)
#
# **Learning goals.** After this notebook you can
# 1. read the `pytorch_ard` "Boston" table (MSE and sparsity against the KL weight, which `pytorch_ard`
#    calls the "reg factor"), redone on a
#    regression set that ships with scikit-learn;
# 2. explain what the **KL weight** (a multiplier $\beta$ of the KL term) and the **threshold** on $\log\alpha$
#    each trade between accuracy and compression: a slider that re-masks a trained model live, and a
#    KL-weight slider that moves along the frontier of a 200-epoch sweep on Fashion-MNIST;
# 3. place Sparse VD against the dense net and magnitude pruning on an accuracy-compression plot,
#    compute its frontier yourself and pick the frontier point for an error budget (exercise 1);
# 4. make a trained model smaller and faster for real with `compress`, and count its bytes in CSR
#    (exercise).
#
# **Time on CPU:** 1-2 minutes in default mode (the first `compress` on a machine also builds its C++
# kernel once, about 35 s), about a minute in fast mode; about 50 minutes of class with the exercises
# (20 + 10 minutes) and the prediction questions. Nothing is trained
# unless you press the button (or set `SPARSEVD_RETRAIN=1`), which trains the class run (Sparse VD and
# its dense twin on the full Fashion-MNIST) in about 5 minutes. The Fashion-MNIST sections need the
# data set on this machine (the Debian package `dataset-fashion-mnist`, or a download): they say so
# when it is missing. Questions marked **Predict** record your answer with `predictions.ask(...)`:
# write it into the variable `MY_...` of its cell before you run the cell; a later cell shows it
# beside the measured value.
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017; the `pytorch_ard` package ([github.com/HolyBayes/pytorch_ard](https://github.com/HolyBayes/pytorch_ard));
# Gale, Elsen, Hooker, [*The State of Sparsity in Deep Neural Networks*](https://arxiv.org/abs/1902.09574), 2019.

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
nb.require(MIN_VERSION, dataset=nb.DATASET)

import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import sparsevd_lab as svd
from sparsevd_lab import checks, experiments, plots, predictions, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
CLASS_DATASET = "fashion-mnist"  # the live retrain (the class run): Debian folder or download, else digits
DATASET_SWEEP = "fashion-mnist"  # the shipped sweep and the shipped LeNet-300-100 (200 epochs each)
RETRAIN = nb.RETRAIN  # SPARSEVD_RETRAIN=1: train one small model live below
THRESHOLD = 3.0  # log alpha at or above which a weight is dropped (the paper's)

# %% [markdown]
# ## 1. The regression table, redone
#
# `pytorch_ard`'s README shows a table for the Boston housing data: a net with one hidden layer of 150
# units, trained dense and with Sparse VD at several **KL weights** $\beta$, the multiplier of the KL
# term in
#
# $$\text{loss} = \text{MSE} + \beta\,\frac{\mathrm{KL}(q\,\|\,p)}{N} .$$
#
# With $\beta = 1$ this is the negative ELBO (eq. 3) per example for a Gaussian likelihood of noise variance
# $1/2$, whose negative log-likelihood is the squared error up to a constant; with unit noise variance it
# would be half the squared error, and the ELBO would be $\beta = 2$. Smaller $\beta$ trusts the data more,
# larger $\beta$ the prior. Their numbers, for the record:

# %%
# NBVAL_CHECK_OUTPUT
ard = pd.DataFrame(experiments.ARD_BOSTON_TABLE,
                   index=["MSE train", "MSE test", "sparsity %"])
print("pytorch_ard README, Boston housing (columns: KL weight):")
print(ard.to_string(float_format=lambda v: f"{v:.3f}"))

# %% [markdown]
# Boston housing has been removed from scikit-learn for ethical reasons, so we redo the table on
# scikit-learn's bundled *diabetes* set (442 patients, 10 features), with inputs and target standardised:
# our MSE is in units of the target's variance (predicting the mean scores about 1), theirs in
# (thousands of dollars)$^2$. Compare the *shape* of the rows, not the numbers.

# %%
reg = nb.shipped_result("regression-sweep", live_epochs=200)
reg_table = experiments.result_frame(reg)
ours = reg_table.assign(column=[("dense" if m == "dense" else f"{r:g}")
                                for m, r in zip(reg_table["model"], reg_table["kl_weight"])])
ours = ours.set_index("column")[["train_mse", "test_mse", "sparsity_%"]].T
ours.index = ["MSE train", "MSE test", "sparsity %"]
print(f"ours, diabetes ({reg['provenance']['epochs_note']}):")
ours.round(3)

# %% [markdown]
# Slide the KL weight (a log scale over the stored values; 0 means no KL term at all):

# %%
widgets.regression_widget(reg_table, kl_weight=1e-3)

# %% [markdown]
# **Static copy** for GitHub and nbviewer: the rows of three settings of the same render, and its figure
# once (for $\beta = 1$; the figure marks the chosen KL weight on curves that do not change).

# %%
tables = widgets.static_fallback(lambda kl_weight: widgets.regression_render(reg_table, kl_weight),
                                 [{"kl_weight": 0.0}, {"kl_weight": 1e-3}, {"kl_weight": 1.0}],
                                 name="regression", save_as=[None, None, "06_regression_sweep.png"],
                                 figures=[2])

# %% [markdown]
# `pytorch_ard`'s "compression %" is the share of weights dropped, which this project calls **sparsity**
# ([glossary](../docs/glossary.md)); compression is total / kept weights, in x. Sparsity 99 % is
# compression 100x.
#
# As in `pytorch_ard`'s table, sparsity grows with the KL weight: with no KL term nothing is
# dropped; at $\beta = 1$ almost every weight goes, and the training error rises because the model is
# now too small to fit the data closely. On diabetes (shipped run) the dense net overfits: its training
# MSE is near 0 and its test MSE above 1, worse than predicting the mean. The KL term acts as a
# regulariser, once it weighs enough: up to $\beta = 10^{-3}$ the test MSE stays near the dense net's
# (between 0.99 and 1.07 against 1.14), from $\beta = 0.1$ on it falls (0.73), and it is best at $\beta = 1$:
# 0.48 against the dense 1.14, with about 99 % of the weights dropped. `pytorch_ard`'s Boston table shows
# the same effect, best at $10^{-3}$ there.
#
# ## 2. One trained model, re-masked live: the threshold
#
# Training sets $\log\alpha$ for every weight; the **threshold** only decides which weights count as dropped
# ($\log\alpha \ge$ threshold). Re-masking costs no training, so we can do it here, now, on the
# LeNet-300-100 shipped with the package (Sparse VD, KL weight 1, 200 epochs on full Fashion-MNIST,
# the paper's recipe) and evaluate it on the 10,000 test images at every move of the slider.

# %%
lenet = experiments.load_result("lenet300", dataset=DATASET_SWEEP)
model = experiments.load_model("lenet300", dataset=DATASET_SWEEP)  # Sparse VD layers, eval mode
dense = experiments.load_model("lenet300", dataset=DATASET_SWEEP, method="dense")  # the dense baseline
print(f"shipped LeNet-300-100 ({lenet['provenance']['epochs_note']}), layers {list(plots.layer_names(model))}")
try:
    nb.check_data(DATASET_SWEEP)
    fashion = svd.load_dataset(DATASET_SWEEP, verbose=False)
    test = fashion.loaders(batch_size=1000)[1]
    print(f"test set: {len(fashion.y_test):,} Fashion-MNIST images")
except RuntimeError as err:
    fashion = test = None
    print(f"Fashion-MNIST is not on this machine, so sections 2 and 5 are skipped: {err}")

# %% [markdown]
# **Predict.** At threshold 3 the model keeps 1 weight in 56 (55.6x). Move the threshold down to 0: weights
# with $0 \le \log\alpha < 3$ are dropped too. By how many points will the test error rise: about 0.5, 2,
# or 10? Write your number into `MY_RISE` below, then run the two cells after it.

# %%
MY_RISE = None  # your prediction: a number of points
predictions.ask("06-threshold-0", "Rise of the test error (points) when the threshold goes from 3 to 0",
                kind="number", prediction=MY_RISE)

# %%
if test is not None:
    display(widgets.threshold_widget(model, test, threshold=THRESHOLD))  # noqa: F821  (IPython's display)

# %% [markdown]
# **Static copy:** the slider's table at three thresholds (computed now, like the slider), and its figure
# once, at threshold 3 (the curve is the same for every threshold; only the ringed point moves).

# %%
if test is not None:
    curve = pd.DataFrame(experiments.threshold_sweep(model, test, widgets.CURVE_THRESHOLDS))
    remasked = widgets.static_fallback(
        lambda threshold: widgets.threshold_render(model, test, threshold, curve),
        [{"threshold": 3.0}, {"threshold": 0.0}, {"threshold": -2.0}], name="threshold",
        save_as=["06_threshold_remask.png", None, None], figures=[0])
    rise = float(remasked[1]["error_%"].iloc[0] - remasked[0]["error_%"].iloc[0])
    predictions.reveal("06-threshold-0", round(rise, 2))

# %% [markdown]
# Inside the gap between the two groups of $\log\alpha$ (notebook 04) the threshold costs little: from 3 to 0
# the compression nearly doubles for about half a point of error. Below 0 the cut reaches into the kept
# group, weights the network uses, and the error climbs quickly. Above 5 weights come back that the
# network had learned to do without: compression falls, the error barely improves. Re-masking is free:
# pick the threshold last, on validation data.
#
# ## 3. The KL weight: a grid over (KL weight, threshold)
#
# The threshold slides along one trained model. The **KL weight** $\beta$ needs one training run per value:
# the shipped sweep trained LeNet-300-100 for 200 epochs on full Fashion-MNIST at five KL weights and
# re-masked each at 11 thresholds. The grey line is the **frontier**: the points no other point beats on
# both error and compression. The KL-weight slider moves the ringed point along it; the reference points are
# the shipped LeNet-300-100 run's dense net and magnitude-pruning baselines.

# %%
sweep = nb.shipped_result("classification-sweep", dataset=DATASET_SWEEP,
                          live_epochs=1 if nb.FAST else 8)
points = experiments.result_frame(sweep)
reference = widgets.reference_rows(lenet)
print(f"{len(points)} points: KL weights {sweep['results']['kl_weights']}, "
      f"thresholds {sweep['results']['thresholds']} ({sweep['provenance']['epochs_note']})")
if sweep["live"]:
    print("NOTE: a small live stand-in (few epochs), not the shipped sweep; "
          "the reading below describes the full sweep")

# %%
frontier = widgets.sweep_widget(points, reference, kl_weight=1.0, threshold=THRESHOLD)
frontier

# %% [markdown]
# **Static copy:** the selected row for the three middle KL weights at threshold 3, the figure once (the
# middle one; the frontier does not move, only the ringed point), then the full grid as tables.

# %%
kws = sorted(points["kl_weight"].unique())
shown = kws[1:4] if len(kws) >= 5 else kws
tables = widgets.static_fallback(
    lambda kl_weight, threshold: widgets.sweep_render(points, kl_weight, threshold, reference),
    [{"kl_weight": kw, "threshold": THRESHOLD} for kw in shown], name="sweep",
    save_as=[f"06_accuracy_compression_kl{kw:g}.png" for kw in shown], figures=[len(shown) // 2])

# %%
print("test error (%), rows: KL weight, columns: threshold")
points.pivot(index="kl_weight", columns="threshold", values="error_%").round(2)

# %%
print("compression (x), rows: KL weight, columns: threshold")
points.pivot(index="kl_weight", columns="threshold", values="compression").round(1)

# %% [markdown]
# Reading the grid (shipped sweep, Fashion-MNIST, 200 epochs each):
# - **KL weight.** A larger $\beta$ pushes more $\log\alpha$ above any threshold: at threshold 3 compression grows
#   from 8x at $\beta = 0.1$ to 315x at $\beta = 10$, and the test error from 10.7 % to 15.0 %. $\beta = 1$ (the
#   ELBO) sits in between: 11.0 % at 56x, one point above the dense net's 10.0 %.
# - **Threshold.** Along a row the error moves by about half a point at most from threshold 0 to 5, while
#   compression changes by a factor of 3 to 4. Every KL weight contributes points to the frontier: the
#   KL weight chooses the region of the frontier, the threshold slides within it.
# - **Baselines.** Magnitude pruning of the dense net, one-shot to Sparse VD's per-layer sparsity with a
#   10-epoch fine-tune, reaches 16.8 % at the same 55.6x: far off the frontier. Iterative magnitude pruning
#   at its own operating point (the most sparsity within half a point of the dense validation error)
#   stopped at 2x with 10.4 %.
#
# **Predict.** You may lose at most one point of test error against the dense net (a budget of 11 %).
# How much compression can the best point of the grid give within it (x)?

# %%
MY_COMPRESSION = None  # your prediction: a number, in x
predictions.ask("06-budget-compression", "Highest compression (x) of the grid within a budget of "
                "the dense error + 1 point", kind="number", prediction=MY_COMPRESSION)

# %% [markdown]
# **Exercise 1 (code, 20 min).** The frontier, then the point for a budget. `points` is a DataFrame
# with columns `kl_weight`, `threshold`, `error_%`, `compression`.
# - `pareto_frontier(points)`: the rows of `points` that no other point beats, i.e. no other point has
#   `error_%` $\le$ and `compression` $\ge$, with at least one of the two strictly better; sorted by
#   compression. Think first: in which order can you scan the points so that one comparison per point
#   decides? (A double loop over all pairs is fine too.)
# - `frontier_point(points, budget)`: the point with the highest compression whose test error is within
#   the budget (`error_%` $\le$ `budget`, in %), as a row of `points`. When no point is within the budget,
#   raise `ValueError` with a message that says so. (Why is that point always on the frontier?)

# %%
def pareto_frontier(points):
    """The rows of ``points`` no other point beats on both error_% and compression, by compression."""
    ### BEGIN SOLUTION
    # From the most compressed down: a point is on the frontier when its error is lower than that
    # of every more compressed point (ties in compression: the lower error first).
    ordered = points.sort_values(["compression", "error_%"], ascending=[False, True])
    keep, best = [], float("inf")
    for label, error in zip(ordered.index, ordered["error_%"]):
        if error < best:
            keep.append(label)
            best = error
    return points.loc[keep].sort_values("compression")
    ### END SOLUTION


def frontier_point(points, budget):
    """The point of ``points`` with the highest compression among those with error_% <= budget."""
    ### BEGIN SOLUTION
    within = points[points["error_%"] <= budget]
    if within.empty:
        raise ValueError(f"no point has a test error within {budget} %; the best is "
                         f"{points['error_%'].min()} %")
    return within.loc[within["compression"].idxmax()]
    ### END SOLUTION


# %%
checks.check_pareto_frontier(pareto_frontier)
checks.check_frontier_point(frontier_point)

# %% [markdown]
# Your frontier on the shipped grid: which KL weights and thresholds it is made of (the grey line of the
# figure above is the package's own `plots.pareto_front`; the two must agree):

# %%
front = pareto_frontier(points)
same = sorted(front.index) == sorted(plots.pareto_front(points).index)
print(f"{len(front)} of {len(points)} points are on the frontier; the same as the figure's line: {same}")
print("frontier points per KL weight:", front.groupby("kl_weight").size().to_dict())
front[["kl_weight", "threshold", "error_%", "compression"]].round(2)

# %%
dense_error = float(reference.loc[reference["method"].str.startswith("dense"), "error_%"].iloc[0])
for budget in (dense_error + 1.0, dense_error + 3.0, dense_error + 5.0):
    best = frontier_point(points, budget)
    print(f"budget {budget:.2f} %: KL weight {best['kl_weight']:g}, threshold {best['threshold']:g} -> "
          f"{best['error_%']:.2f} % at {best['compression']:.1f}x")
predictions.reveal("06-budget-compression",
                   round(float(frontier_point(points, dense_error + 1.0)["compression"]), 1))

# %% [markdown]
# ## 4. Opt in: train the class run live
#
# The button trains the class run (`svd.experiments.class_run`): LeNet-300-100 with Sparse VD and its
# dense twin, the same short recipe, on the full Fashion-MNIST, both at once in about 5 minutes on a
# 2-core CPU, one printed line per epoch. It shows both errors and how the Sparse VD model re-masks at
# several thresholds (measured on the validation split). KL weight 1: the true ELBO, where the slider's
# sweep has its 200-epoch points. Without the data set it falls back to the offline digits and says
# why Sparse VD loses accuracy there. Nothing runs unless you click (or set `SPARSEVD_RETRAIN=1` before
# starting the notebook).

# %%
def train_class_run():
    run = experiments.class_run(CLASS_DATASET, fast=nb.FAST, seed=0)
    rows = pd.DataFrame(run["results"]["rows"]).set_index("method")
    print(f"{run['dataset']}: dense twin {rows.loc['dense', 'error_%']:.2f} % test error, Sparse VD "
          f"{rows.loc['sparse-vd', 'error_%']:.2f} % at {rows.loc['sparse-vd', 'compression']:.1f}x; "
          f"{run['provenance']['wall_time_s']:.0f} s in all")
    return pd.DataFrame(rows.loc["sparse-vd", "val_by_threshold"]).rename(
        columns={"val_error_%": "validation error (%)"})


if RETRAIN:
    display(train_class_run())  # noqa: F821  (IPython's display)
widgets.retrain_button(train_class_run, "Train the class run live (Sparse VD and its dense twin, "
                                        "about 5 minutes)")

# %% [markdown]
# ## 5. Compression for real: bytes on disk and inference time
#
# A mask is not yet a smaller model: the masked LeNet-300-100 still multiplies by all 266,200 weights.
# `sparsevd_lab.compress` removes what the mask makes dead (pixels no kept weight reads, units with no kept
# input or output weight: notebook 04 counted them), stores each remaining layer dense or in CSR, whichever
# runs faster, and returns a plain `torch.nn` model with the same outputs.

# %%
start = time.perf_counter()
small = svd.compress(model, THRESHOLD, input_shape=(1, 28, 28),
                     storage="dense" if nb.FAST else "auto")  # fast mode: no timing, no kernel build
print(f"compress took {time.perf_counter() - start:.1f} s")
print(small)

# %%
if test is not None:
    x_test = fashion.x_test
    with torch.inference_mode():
        same = (small(x_test) - model(x_test)).abs().max().item()
        err_small = 100 * (small(x_test).argmax(1) != fashion.y_test).float().mean().item()
        err_dense = 100 * (dense(x_test).argmax(1) != fashion.y_test).float().mean().item()
    print(f"largest output difference, compressed vs Sparse VD: {same:.2g}")
    print(f"test error: compressed {err_small:.2f} %, dense net {err_dense:.2f} %")

# %% [markdown]
# **Bytes in CSR.** CSR (compressed sparse row) stores a sparse matrix as three arrays: the kept values,
# the column index of each, and one pointer per row to where the row starts in the other two (plus one for
# the end).
#
# **Predict.** The model keeps 1 weight in 56. Stored in CSR with 4-byte values and 4-byte indices, how many
# times fewer bytes than the dense float32 weights will its weights take?

# %%
MY_CSR_RATIO = None  # your prediction: a number, in x
predictions.ask("06-csr-ratio", "Dense float32 bytes / CSR bytes of the weights (x)", kind="number",
                prediction=MY_CSR_RATIO)
#
# **Exercise 2 (code, 5-10 min).** Write `csr_bytes(weight, value_bytes=4, index_bytes=4)`: the bytes a 2-d
# weight matrix takes in CSR, where the dropped weights are exactly 0.

# %%
def csr_bytes(weight, value_bytes=4, index_bytes=4):
    """Bytes of a 2-d matrix in CSR: values and column indices of the non-zeros, rows + 1 pointers."""
    ### BEGIN SOLUTION
    nnz = int(np.count_nonzero(weight))
    rows = weight.shape[0]
    return nnz * (value_bytes + index_bytes) + (rows + 1) * index_bytes
    ### END SOLUTION


# %%
checks.check_csr_bytes(csr_bytes)

# %%
rows = []
for name, layer in plots.layer_names(model).items():
    w = (layer.weight * layer.mask(THRESHOLD)).detach().numpy()  # dropped weights set to 0
    rows.append({"layer": name, "shape": "x".join(map(str, w.shape)), "kept": int(np.count_nonzero(w)),
                 "dense bytes (float32)": w.size * 4, "CSR bytes (float32, int32)": csr_bytes(w)})
csr_table = pd.DataFrame(rows).set_index("layer")
csr_table.loc["total"] = ["", csr_table["kept"].sum(), csr_table["dense bytes (float32)"].sum(),
                          csr_table["CSR bytes (float32, int32)"].sum()]
print(f"weights in CSR: {csr_table.loc['total', 'dense bytes (float32)'] / csr_table.loc['total', 'CSR bytes (float32, int32)']:.1f}x "
      f"smaller than dense (compression {lenet['results']['rows'][1]['compression']:.1f}x)")
predictions.reveal("06-csr-ratio", round(float(csr_table.loc["total", "dense bytes (float32)"]
                                               / csr_table.loc["total", "CSR bytes (float32, int32)"]), 1))
csr_table

# %% [markdown]
# Each kept weight costs two numbers in CSR (its value and its column), so a mask alone gains about half the
# compression. The file `save_compressed` writes does better: it first removes the dead rows and columns,
# then stores the indices in the smallest integer type that holds them (or a 1-bit mask when that is
# smaller). The files on disk, written now (safetensors, biases included):

# %%
sizes = svd.file_size_report(model, small)
sizes

# %% [markdown]
# **Inference time, measured fairly.** Both models see the same batch, in turns (so background load hits
# both alike), after a warm-up, under `torch.inference_mode`, and we report the median of several repeats
# (one slow repeat cannot move a median). The dense net is the shipped LeNet-300-100 trained without Sparse
# VD (plain `nn.Linear` layers).

# %%
def median_times(models, x, repeats=7, calls=1, warmup=3):
    """Median seconds per call of each model on x: warm-up, then repeats timed in turns."""
    times = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(warmup):
                m(x)
        for _ in range(repeats):
            for name, m in models.items():
                start = time.perf_counter()
                for _ in range(calls):
                    m(x)
                times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


# %%
x_batch = fashion.x_test[:1000] if test is not None else torch.randn(1000, 1, 28, 28)
rows = []
for batch, calls in ((1, 200), (1000, 5)):
    t = median_times({"dense": dense, "compressed": small}, x_batch[:batch].contiguous(), calls=calls)
    rows.append({"batch": batch, "dense (us)": 1e6 * t["dense"], "compressed (us)": 1e6 * t["compressed"],
                 "speed-up (x)": t["dense"] / t["compressed"]})
print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of 7 repeats")
pd.DataFrame(rows).set_index("batch").round(1)

# %% [markdown]
# The compressed model gives the same outputs as the Sparse VD model (up to float rounding) and so the same
# test error, from a file many times smaller than the dense net's. At batch 1000 it is several times faster;
# at batch 1 a call's fixed overhead dominates and the two are close. The timings depend on the machine and
# its load: rerun the cell and see how much they move. `docs/compression.md`
# has the full benchmark (LeNet-5 too) and assignment A2 asks you to build this yourself.
#
# ## What to remember
# - The threshold slides along one trained model and costs no training: inside the gap of $\log\alpha$ it
#   barely changes the error. Re-mask, evaluate, pick last.
# - The KL weight chooses the region of the accuracy-compression frontier; each value is one training run.
# - Keep baselines at their own operating points: one-shot magnitude pruning to Sparse VD's sparsity is
#   far off the frontier; the dense net sets the error floor.
# - A mask is not a smaller model: `compress` removes dead units and stores what is left compactly, which
#   is what makes the file smaller and inference faster.
#
# Back to the start: [01 · the log-uniform prior](01_log_uniform_prior.ipynb). Words used here:
# [glossary](../docs/glossary.md).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
