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
# # 04 · What the weights look like while Sparse VD trains
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/04_weight_visualisation.ipynb)
#
# **Learning goals.** After this notebook you can
# 1. read heat maps of LeNet-5's first-layer filters and of a dense-layer slice over the epochs, with
#    dropped weights drawn white;
# 2. read the distribution of $\log\alpha$ per layer and where the threshold cuts it;
# 3. see which input pixels LeNet-300-100 still uses after training.
#
# **Time on CPU:** about 1 minute in default mode on 2 cores (one short live training run, plus an
# animation written to `figures/`), under a minute in fast mode. The snapshots come from the shipped results.
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (fig. 1 and the LeNet-5 filters); Louizos, Ullrich, Welling,
# [*Bayesian Compression for Deep Learning*](https://arxiv.org/abs/1705.08665), NeurIPS 2017.

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

import functools

import matplotlib.pyplot as plt
import numpy as np

import sparsevd_lab as svd
from sparsevd_lab import experiments, plots, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
DATASET = nb.DATASET  # "offline-digits" (no network); "mnist" downloads full MNIST (opt-in)
EPOCHS = 1 if nb.FAST else 8  # live LeNet-300-100 epochs for the pixel map
N_TRAIN = 600 if nb.FAST else None
THRESHOLD = 3.0  # log alpha above which a weight is dropped
SEED = 0

# %% [markdown]
# ## 1. LeNet-5's first layer over the epochs
#
# The shipped LeNet-5 run kept small snapshots every few epochs: all 20 first-layer filters
# ($5\times5$) and a $32\times100$ slice of the dense layer 800-500, each with its $\log\alpha$. In the heat maps
# a diverging colour map is centred at 0 (red positive, blue negative) on one scale for all epochs,
# and a weight with $\log\alpha \ge 3$ (dropped) is **white**.

# %%
lenet5 = nb.shipped_result("lenet5", dataset=DATASET,
                           live_epochs=2)
snaps = experiments.load_snapshots(lenet5)
epochs = [int(e) for e in snaps["epoch"]]
print("snapshot epochs:", epochs)

# %%
# NBVAL_CHECK_OUTPUT
print(f"conv1 snapshot: {snaps['conv1_weight'].shape[1]} filters of "
      f"{'x'.join(map(str, snaps['conv1_weight'].shape[2:]))}; "
      f"fc1 slice: {'x'.join(map(str, snaps['fc1_weight'].shape[1:]))} weights")

# %% [markdown]
# Slide through the epochs (the table gives the kept weights of both snapshotted layers):

# %%
widgets.snapshot_widget(snaps, "conv1", THRESHOLD)

# %% [markdown]
# **Static copy** (GitHub, nbviewer): the first, a middle and the last snapshot.

# %%
shown = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
tables = widgets.static_fallback(lambda epoch: widgets.snapshot_render(snaps, epoch, "conv1", THRESHOLD),
                                 [{"epoch": e} for e in shown], name="snapshot")

# %% [markdown]
# At the start every weight is kept (random filters). As the KL weight warms up, weights turn white one
# by one; the number kept per filter is in each title (kept / 25). In the shipped run (10 epochs; the
# recipe has 200) the first layer keeps most of its weights: it has few of them and each is used at every
# image position, so it is the last layer to be thinned (the paper reports 67 % sparsity for it after
# 200 epochs, against 98-99.8 % for the others).
#
# The same for the $32\times100$ slice of the dense layer (rows: output units, columns: inputs):

# %%
widgets.snapshot_widget(snaps, "fc1", THRESHOLD)

# %%
tables = widgets.static_fallback(lambda epoch: widgets.snapshot_render(snaps, epoch, "fc1", THRESHOLD),
                                 [{"epoch": epochs[-1]}], name="snapshot")

# %% [markdown]
# Whole rows and columns go white: a column is an input unit no longer used (a dead conv feature),
# a row an output unit that receives nothing. Such structure is what `sparsevd_lab.compress` removes to
# make the model actually smaller and faster.
#
# **An animation** of the filters over all snapshots is written as a GIF (default mode) with
# matplotlib's `PillowWriter`:

# %%
la_key = "conv1_log_alpha"
frames = [[plots.weight_image(w[0], la[0], THRESHOLD) for w, la in zip(snaps["conv1_weight"][i],
                                                                        snaps[la_key][i])]
          for i in range(len(epochs))]
if nb.mode() == "default":
    gif = plots.animate_snapshots(frames, nb.figure_path("04_lenet5_conv1.gif"),
                                  titles=[f"LeNet-5 conv1, epoch {e}" for e in epochs], fps=2)
    print(f"animation written to {gif} ({len(frames)} frames)")
else:
    print("fast mode: animation skipped")

# %% [markdown]
# ## 2. The distribution of $\log\alpha$
#
# Sparse VD does not leave $\log\alpha$ near the threshold: it splits the weights into two groups, a peak of
# useful weights at small $\log\alpha$ and a peak of dropped weights far above 3. That is why the exact
# threshold matters little (notebook 06 slides it).

# %%
fig = plots.plot_log_alpha_hist({"conv1": snaps["conv1_log_alpha"][-1],
                                 "fc1 slice": snaps["fc1_log_alpha"][-1]}, THRESHOLD)
fig.axes[0].set_title(f"log alpha at epoch {epochs[-1]} (LeNet-5, shipped run)")
nb.savefig(fig, "04_log_alpha_hist.png")
plt.show()

# %% [markdown]
# ## 3. Which input pixels does LeNet-300-100 use?
#
# Every input pixel of LeNet-300-100 feeds 300 weights of the first layer. We train the net live for a few
# epochs and count, for each pixel, how many of its 300 weights survive; reshaped to $28\times28$ this is
# a map of the pixels the network looks at.

# %%
data = svd.load_dataset(DATASET)
if N_TRAIN:
    data = data.subset(N_TRAIN, 500)
svd.set_seed(SEED)
model = svd.lenet_300_100(in_features=28 * 28)
warmup = functools.partial(svd.kl_warmup, start=max(1, EPOCHS // 10), end=max(1, EPOCHS // 2))
history = svd.fit(model, data, epochs=EPOCHS, kl_weight=warmup, seed=SEED, progress=False)
first = svd.svdo_layers(model)[0][1]
kept_per_pixel = first.mask(THRESHOLD).sum(0).reshape(28, 28).numpy()
print(f"after {EPOCHS} epoch(s): test accuracy {history['test_acc'].iloc[-1]:.3f}, "
      f"{history['sparsity_%'].iloc[-1]:.1f}% of all weights dropped")
fig = plots.plot_pixel_map(kept_per_pixel, total=300, image=data.x_train.mean(0)[0].numpy())
nb.savefig(fig, "04_pixel_map.png")
plt.show()

# %% [markdown]
# The border pixels are blank in every training image, carry no information and go first: their
# weights are white. What survives sits where the strokes of digits vary, which matches the mean image
# on the right. The $\log\alpha$ histogram of the live model, all three layers:

# %%
fig = plots.plot_log_alpha_hist({name: m.log_alpha.detach().numpy()
                                 for name, m in svd.svdo_layers(model)}, THRESHOLD)
nb.savefig(fig, "04_log_alpha_lenet300.png")
plt.show()

# %% [markdown]
# The receptive fields of the first 8 units of LeNet-300-100 at the end of the shipped run
# (each row of the first weight matrix reshaped to $28\times28$, dropped weights white):

# %%
lenet300 = nb.shipped_result("lenet300", dataset=DATASET,
                             live_epochs=2)
s300 = experiments.load_snapshots(lenet300)
imgs = [plots.weight_image(w.reshape(28, 28), la.reshape(28, 28), THRESHOLD)
        for w, la in zip(s300["fc1_weight"][-1], s300["fc1_log_alpha"][-1])]
fig = plots.plot_weight_grid(imgs, ncols=4, cell=1.8, titles=[f"unit {i}" for i in range(len(imgs))],
                             suptitle=f"LeNet-300-100 first layer, epoch {int(s300['epoch'][-1])}")
nb.savefig(fig, "04_receptive_fields.png")
plt.show()

# %% [markdown]
# At this compression most units lose every input weight: a unit with no inputs outputs a constant and
# can be removed with its row and column (what `sparsevd_lab.compress` does). The few survivors keep a
# handful of pixels in the centre of the image.
#
# ## What to remember
# - Sparse VD drops whole units (and, with longer training, whole filters), not just scattered weights.
# - $\log\alpha$ separates into kept and dropped groups; the threshold sits in the gap.
# - The first layer of an MNIST MLP learns to ignore the border pixels.
#
# Next: [05 · random labels](05_random_labels.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
