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
#    each trade between accuracy and compression, with sliders over stored results;
# 3. place Sparse VD against the dense net and magnitude pruning on an accuracy-compression plot.
#
# **Time on CPU:** under a minute in default and fast mode: the sliders read stored results, nothing is
# trained unless you press the button (or set `SPARSEVD_RETRAIN=1`), which trains one small model in
# about a minute.
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017; the `pytorch_ard` package ([github.com/HolyBayes/pytorch_ard](https://github.com/HolyBayes/pytorch_ard));
# Gale, Elsen, Hooker, [*The State of Sparsity in Deep Neural Networks*](https://arxiv.org/abs/1902.09574), 2019.

# %%
# Setup: on Colab, install the package first; anywhere else, use the installed one.
import sys

MIN_VERSION = "0.1.0"
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

import matplotlib.pyplot as plt
import pandas as pd

import sparsevd_lab as svd
from sparsevd_lab import experiments, plots, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
DATASET = nb.DATASET  # classification sweep data: "offline-digits" (no network) or "mnist" (download)
RETRAIN = nb.RETRAIN  # SPARSEVD_RETRAIN=1: train one small model live below
RETRAIN_EPOCHS = 1 if nb.FAST else 10
RETRAIN_KL_WEIGHT = 1.0

# %% [markdown]
# ## 1. The regression table, redone
#
# `pytorch_ard`'s README shows a table for the Boston housing data: a net with one hidden layer of 150
# units, trained dense and with Sparse VD at several **KL weights** $\beta$, the multiplier of the KL
# term in
#
# $$\text{loss} = \text{MSE} + \beta\,\frac{\mathrm{KL}(q\,\|\,p)}{N} .$$
#
# $\beta = 1$ is the true ELBO; $\beta < 1$ trusts the data more, $\beta > 1$ the prior. Their numbers, for the record:

# %%
# NBVAL_CHECK_OUTPUT
ard = pd.DataFrame(experiments.ARD_BOSTON_TABLE, index=["MSE train", "MSE test", "compression %"])
print("pytorch_ard README, Boston housing (reg factor in the column names):")
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
# **Static copy** for GitHub and nbviewer: three settings of the same render.

# %%
tables = widgets.static_fallback(lambda kl_weight: widgets.regression_render(reg_table, kl_weight),
                                 [{"kl_weight": 0.0}, {"kl_weight": 1e-3}, {"kl_weight": 1.0}],
                                 name="regression", save_as=[None, None, "06_regression_sweep.png"])

# %% [markdown]
# `pytorch_ard`'s "compression %" is the share of weights dropped, which this project calls **sparsity**
# ([glossary](../docs/glossary.md)); compression is total / kept weights, in x.
#
# As in `pytorch_ard`'s table, sparsity grows with the KL weight: with no KL term nothing is
# dropped; at $\beta = 1$ almost every weight goes, and the training error rises because the model is
# now too small to fit the data closely. On diabetes (shipped run) the dense net overfits: its training
# MSE is near 0 and its test MSE above 1, worse than predicting the mean. The KL term acts as a
# regulariser: the test error falls as the KL weight grows, to its best at $\beta = 1$ with about 99 % of the
# weights dropped. `pytorch_ard`'s Boston table shows the same effect, best at $10^{-3}$ there.
#
# ## 2. LeNet-300-100: a grid over the KL weight and the threshold
#
# The shipped classification sweep trained LeNet-300-100 once per KL weight and then **re-masked** each
# trained model at every threshold (no retraining: the threshold only decides which weights count as
# dropped). The sliders read that grid, so they answer instantly.

# %%
sweep = nb.shipped_result("classification-sweep", dataset=DATASET, live_epochs=1 if nb.FAST else 8)
points = experiments.result_frame(sweep)
try:
    lenet = nb.shipped_result("lenet300", dataset=DATASET,
                              retrain=False, verbose=False)
    ref = widgets.table1(lenet).reset_index()
    reference = pd.DataFrame({"method": ref["method"] + " (lenet300 run)",
                              "error_%": ref["error % (ours)"],
                              "compression": ref["compression x (ours)"]}).iloc[:2]
except FileNotFoundError:
    reference = None
print(f"{len(points)} points: KL weights {sweep['results']['kl_weights']}, "
      f"thresholds {sweep['results']['thresholds']} ({sweep['provenance']['epochs_note']})")
if sweep["live"]:
    print("NOTE: a small live stand-in (600 digits, few epochs), not the shipped sweep; "
          "the reading below describes the full sweep")

# %%
widgets.sweep_widget(points, reference, kl_weight=1.0, threshold=3.0)

# %% [markdown]
# **Static copy:** three settings, then the full grid as tables.

# %%
rfs = sorted(points["kl_weight"].unique())
shown = sorted({rfs[0], widgets.nearest(rfs, 1.0, log=True), rfs[-1]})
tables = widgets.static_fallback(
    lambda kl_weight, threshold: widgets.sweep_render(points, kl_weight, threshold, reference),
    [{"kl_weight": rf, "threshold": 3.0} for rf in shown], name="sweep",
    save_as=[f"06_accuracy_compression_reg{rf:g}.png" for rf in shown])

# %%
print("test error (%), rows: KL weight, columns: threshold")
points.pivot(index="kl_weight", columns="threshold", values="error_%").round(2)

# %%
print("compression (x), rows: KL weight, columns: threshold")
points.pivot(index="kl_weight", columns="threshold", values="compression").round(1)

# %% [markdown]
# Reading the grid (shipped sweep):
# - **KL weight.** A larger $\beta$ pushes more $\log\alpha$ above any threshold: compression grows by two orders
#   of magnitude from the smallest to the largest $\beta$, and the error grows once the network runs out of
#   weights. $\beta = 1$ (the ELBO) sits in between; small $\beta$ gives a denser, more accurate net.
# - **Threshold.** Along a row the error barely moves from threshold 0 to 5, and compression changes by
#   less than a factor of two: $\log\alpha$ is split into a kept group and a dropped group (notebook 04), and most
#   weights lie far from any threshold in this range. Re-masking is free, so pick the threshold last.
# - **Baselines.** The dense net (1x) sets the error floor. One-shot magnitude pruning of that net to Sparse
#   VD's per-layer sparsity, with a short fine-tune, fails at this extreme sparsity on 4,000 digits
#   (notebook 03); gradual pruning would be the stronger baseline.
#
# ## 3. Opt in: train one model live
#
# The button trains LeNet-300-100 with Sparse VD at `RETRAIN_KL_WEIGHT` for `RETRAIN_EPOCHS` epochs on
# 1,000 digits (about a minute on a CPU) and re-masks it at several thresholds, like the sweep.
# Nothing runs unless you click (or set `SPARSEVD_RETRAIN=1` before starting the notebook).

# %%
def train_small(kl_weight=RETRAIN_KL_WEIGHT, epochs=RETRAIN_EPOCHS):
    data = svd.load_dataset(DATASET, verbose=False).subset(1000, 500)
    model = svd.lenet_300_100()
    history = svd.fit(model, data, epochs=epochs, kl_weight=lambda e: kl_weight * min(1, e / 2),
                      progress=False)
    print(f"trained {epochs} epochs at KL weight {kl_weight:g} in {history['seconds'].sum():.0f} s")
    rows = experiments.threshold_sweep(model, data.loaders()[1], [0.0, 1.5, 3.0, 5.0])
    return pd.DataFrame(rows)[["threshold", "error_%", "sparsity_per_layer", "compression"]]


if RETRAIN:
    display(train_small())  # noqa: F821  (IPython's display)
widgets.retrain_button(train_small, f"Train LeNet-300-100 live (KL weight {RETRAIN_KL_WEIGHT:g}, "
                                    f"{RETRAIN_EPOCHS} epochs)")

# %% [markdown]
# ## What to remember
# - The KL weight scales the KL term: it sets how much compression you buy with how much error.
# - The threshold matters little inside the gap between kept and dropped $\log\alpha$: re-masking is free.
# - Keep magnitude pruning in the comparison: it is a strong baseline at the same sparsity.
#
# Back to the start: [01 · the log-uniform prior](01_log_uniform_prior.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
