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
# 1. read heat maps of LeNet-5's first-layer filters over the epochs, with dropped weights drawn grey;
# 2. read the distribution of $\log\alpha$ per layer, where the threshold cuts it, and why the dropped
#    weights pile up at one value;
# 3. find which input pixels and which hidden units a trained LeNet-300-100 still uses (two exercises),
#    and see whole rows and columns of a dense layer go.
#
# **Time on CPU:** under a minute in default and fast mode (about 40 minutes of class with the
# exercises): nothing is trained, everything comes from the shipped results (LeNet-5 on full
# Fashion-MNIST, 100 epochs of Sparse VD; LeNet-300-100 on full Fashion-MNIST with the paper's 200-epoch
# recipe). Default mode also writes an animation to `figures/` and shows it.
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017 (fig. 1 and the LeNet-5 filters); Louizos, Ullrich, Welling,
# [*Bayesian Compression for Deep Learning*](https://arxiv.org/abs/1705.08665), NeurIPS 2017.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Image, display

import sparsevd_lab as svd
from sparsevd_lab import checks, experiments, plots, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
DATASET = "fashion-mnist"  # the shipped LeNet-5 snapshots; "offline-digits": the run on 3,500 digits
DATASET_300 = "fashion-mnist"  # the shipped LeNet-300-100 (200 epochs, the paper's recipe)
THRESHOLD = 3.0  # log alpha at or above which a weight is dropped

# %% [markdown]
# ## 1. LeNet-5's first layer over the epochs
#
# The shipped LeNet-5 run (100 epochs of Sparse VD on the 55,000 Fashion-MNIST training images) kept a
# snapshot every 10 epochs: all 20 first-layer filters ($5\times5$) with their $\log\alpha$. In the heat maps a diverging colour map is centred at 0 (red positive, blue
# negative, white near 0) on one scale for all epochs, and a weight with $\log\alpha \ge 3$ (dropped) is
# **grey**: a colour the map never gives a kept weight, so a small kept weight (near white) and a
# dropped one cannot be confused. The title of each filter counts its kept weights.

# %%
lenet5 = nb.shipped_result("lenet5", dataset=DATASET, live_epochs=2)
snaps = experiments.load_snapshots(lenet5)
epochs = [int(e) for e in snaps["epoch"]]
print("snapshot epochs:", epochs)

# %%
# NBVAL_CHECK_OUTPUT
print(f"conv1 snapshot: {snaps['conv1_weight'].shape[1]} filters of "
      f"{'x'.join(map(str, snaps['conv1_weight'].shape[2:]))}")

# %% [markdown]
# Slide through the epochs (the table gives the kept weights of every snapshotted layer):

# %%
widgets.snapshot_widget(snaps, "conv1", THRESHOLD)

# %% [markdown]
# **Static copy** (GitHub, nbviewer): the first, a middle and the last snapshot.

# %%
shown = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
tables = widgets.static_fallback(lambda epoch: widgets.snapshot_render(snaps, epoch, "conv1", THRESHOLD),
                                 [{"epoch": e} for e in shown], name="snapshot")

# %% [markdown]
# At the start almost every weight is kept (random filters; the few grey ones are tiny initial weights:
# $\log\alpha = \log\sigma^2 - \log\theta^2$ starts at $\log\sigma^2 = -10$, so $|\theta| < 0.0015$ is already above
# the threshold). As the KL weight warms up, weights turn grey one by one. At the last snapshot:

# %%
for layer in ("conv1", "conv2"):
    kept = snaps[f"{layer}_log_alpha"][-1] < THRESHOLD  # (filters, channels, 5, 5)
    whole = int((kept.reshape(len(kept), -1).sum(1) == 0).sum())
    print(f"epoch {epochs[-1]}: {layer} keeps {kept.sum():,} of {kept.size:,} weights "
          f"({100 * (1 - kept.mean()):.1f} % sparsity); {whole} of {len(kept)} filters dropped whole")

# %% [markdown]
# conv1 is the least thinned layer: it has few weights and each is used at every image position, so each
# one matters to the data term. The paper reports 67 % sparsity for conv1 on MNIST. Set `DATASET =
# "offline-digits"` above to see the run on 3,500 digits instead: with 16x fewer training examples the KL
# term weighs 16x more against the data, and conv1 ends with about one weight in five.
#
# **The animation** of the filters over all snapshots, made with matplotlib's `PillowWriter`, saved to
# `figures/04_lenet5_conv1.gif` and shown here (default mode; one frame per snapshot):

# %%
frames = [[plots.weight_image(w[0], la[0], THRESHOLD)
           for w, la in zip(snaps["conv1_weight"][i], snaps["conv1_log_alpha"][i])]
          for i in range(len(epochs))]
if nb.mode() == "default":
    gif = plots.animate_snapshots(frames, nb.figure_path("04_lenet5_conv1.gif"),
                                  titles=[f"LeNet-5 conv1, epoch {e}" for e in epochs],
                                  fps=2)
    print(f"animation written to {gif} ({len(frames)} frames)")
    display(Image(filename=str(gif)))
else:
    print("fast mode: animation skipped")

# %% [markdown]
# ## 2. LeNet-300-100 after the paper's recipe
#
# The rest of the notebook reads the LeNet-300-100 shipped with the package: trained with Sparse VD on
# full Fashion-MNIST for 200 epochs (the paper's recipe; the paper's Table 1 uses MNIST). Its layers,
# named as in the paper:

# %%
result300 = experiments.load_result("lenet300", dataset=DATASET_300)
model = experiments.load_model("lenet300", dataset=DATASET_300)
layers = plots.layer_names(model)
svd_row = next(r for r in result300["results"]["rows"] if r["method"] == "sparse-vd")
print(f"shipped run: {result300['provenance']['epochs_note']}; test error {svd_row['error_%']:.2f} %, "
      f"compression {svd_row['compression']:.1f}x")

# %%
# NBVAL_CHECK_OUTPUT
log_alpha = {name: m.log_alpha.detach().numpy() for name, m in layers.items()}
pd.DataFrame([{"layer": name, "shape (out x in)": "x".join(map(str, la.shape)), "weights": la.size,
               "kept": int((la < THRESHOLD).sum()),
               "sparsity %": round(100 * float((la >= THRESHOLD).mean()), 2)}
              for name, la in log_alpha.items()]).set_index("layer")

# %% [markdown]
# ### The distribution of $\log\alpha$
#
# **Predict.** Sparse VD pushes $\log\alpha$ up for every weight the data does not need. Will the dropped
# weights spread out to ever larger $\log\alpha$, or gather somewhere? Where?

# %%
fig = plots.plot_log_alpha_hist(log_alpha, THRESHOLD)
fig.axes[0].set_title(f"log alpha per layer, LeNet-300-100 after 200 epochs ({DATASET_300})")
nb.savefig(fig, "04_log_alpha_lenet300.png")
plt.show()

# %% [markdown]
# Two groups: kept weights spread over small $\log\alpha$, and the dropped weights far above the threshold,
# where the exact threshold hardly matters (notebook 06 slides it). The dropped group is not spread out:
# it **piles up between 11 and 14** (fc1 in a sharp peak near 13). That is not a clamp. The layer computes
#
# $$\log\alpha = \log\sigma^2 - \log(\theta^2 + 10^{-8}),$$
#
# with $10^{-8}$ against a division by zero. The KL term pulls $\theta$ of a useless weight to zero (a
# weight with large $\alpha$ only adds noise), and once $\theta^2 \ll 10^{-8}$ the denominator is $10^{-8}$,
# so $\log\alpha$ stops at $\log\sigma^2 + 18.4$: a wall. Meanwhile the KL's slope in $\log\alpha$ goes to zero
# for large $\alpha$ (notebook 02), so nothing moves $\log\sigma^2$ far. The numbers of the dropped weights:

# %%
wall = []
for name, m in layers.items():
    la, ls2, theta = log_alpha[name], m.log_sigma2.detach().numpy(), m.weight.detach().numpy()
    d = la >= THRESHOLD
    wall.append({"layer": name, "dropped": int(d.sum()),
                 "share with theta^2 < 1e-8": round(float((theta[d] ** 2 < 1e-8).mean()), 3),
                 "median log_sigma2": round(float(np.median(ls2[d])), 2),
                 "median log_sigma2 - log(1e-8)": round(float(np.median(ls2[d]) - np.log(1e-8)), 2),
                 "median log alpha": round(float(np.median(la[d])), 2)})
pd.DataFrame(wall).set_index("layer")

# %% [markdown]
# In fc1 and fc2 almost two thirds of the dropped weights have $\theta^2 < 10^{-8}$, and their median
# $\log\alpha$ sits next to $\log\sigma^2 + 18.4$. A different $\varepsilon$ would move the wall, not the mask.
#
# ### Which input pixels does the first layer still read?
#
# Every input pixel feeds 300 weights of fc1 (one column of its $300\times784$ weight matrix). A pixel the
# network still reads keeps at least one of them.
#
# **Predict.** Of the 784 pixels of a Fashion-MNIST image, how many does fc1 still read after training,
# with 98.4 % of its weights dropped: under 100, about 400, or most of them?
#
# **Exercise 1 (code, 5-10 min).** Write `pixels_used(log_alpha, threshold)`: for fc1's `log_alpha`
# (one row per unit, one column per input pixel), a boolean vector with one value per pixel, True when at
# least one of the pixel's weights is kept. A weight is kept when $\log\alpha$ is below the threshold
# (sec. 4.3 of the paper).

# %%
def pixels_used(log_alpha, threshold):
    """True for every input pixel (column of log_alpha) with at least one kept weight."""
    ### BEGIN SOLUTION
    kept = log_alpha < threshold  # a weight is kept below the threshold
    return kept.any(axis=0)  # a column = one pixel's weights to all units
    ### END SOLUTION


# %%
checks.check_pixels_used(pixels_used)

# %%
used = pixels_used(log_alpha["fc1"], THRESHOLD)
print(f"fc1 reads {int(used.sum())} of {used.size} pixels "
      f"({used.size - int(used.sum())} are never read)")

# %% [markdown]
# How many weights of each pixel survive, beside the mean training image (when Fashion-MNIST is on this
# machine):

# %%
kept_per_pixel = (log_alpha["fc1"] < THRESHOLD).sum(0).reshape(28, 28)
try:
    nb.check_data(DATASET_300)
    mean_image = svd.load_dataset(DATASET_300, verbose=False).x_train.mean(0)[0].numpy()
except RuntimeError as err:  # Fashion-MNIST not on this machine and no network
    print(f"(no mean image: {err})")
    mean_image = None
fig = plots.plot_pixel_map(kept_per_pixel, total=300, image=mean_image)
nb.savefig(fig, "04_pixel_map.png")
plt.show()

# %% [markdown]
# The pixels that are never read sit in the corners and along the left and right edges, where almost
# every garment image is background. Few pixels are dropped outright, but most keep only a handful of
# their 300 weights: the network reads the image through few units, not through few pixels.
#
# ### Receptive fields of the units that survive
#
# Each unit of fc1 has one weight per pixel: its row of the weight matrix, reshaped to $28\times28$, is
# the pattern the unit responds to (its receptive field). Most units lose every weight, so we rank the
# units by their number of kept weights and show the 16 with the most:

# %%
fc1_theta = layers["fc1"].weight.detach().numpy()
kept_per_unit = (log_alpha["fc1"] < THRESHOLD).sum(1)
ranked = np.argsort(-kept_per_unit, kind="stable")[:16]
imgs = [plots.weight_image(fc1_theta[u].reshape(28, 28), log_alpha["fc1"][u].reshape(28, 28), THRESHOLD)
        for u in ranked]
vmax = np.percentile(np.abs(np.concatenate([i.compressed() for i in imgs])), 99)  # a few outliers
fig = plots.plot_weight_grid(imgs, ncols=8, cell=1.5, vmax=vmax,
                             titles=[f"unit {u}: {kept_per_unit[u]} kept" for u in ranked],
                             suptitle="LeNet-300-100 fc1: the 16 units with the most kept weights")
nb.savefig(fig, "04_receptive_fields.png")
plt.show()
print(f"units with at least one kept input weight: {int((kept_per_unit > 0).sum())} of 300; "
      f"the 16 shown keep {kept_per_unit[ranked].min()} to {kept_per_unit[ranked].max()} of their 784 input weights")

# %% [markdown]
# Even the busiest survivors read only 63 to 94 of the 784 pixels (printed above), scattered over the
# area where the garments are, with positive (red) and negative (blue) weights mixed: not the smooth
# stroke templates of a dense net's first layer. Sparse VD keeps, for each surviving unit, a few informative pixels; the other
# 233 units keep nothing at all.
#
# ### How many fc1 units are still alive?
#
# A unit with no kept input weight outputs a constant; a unit with no kept output weight is read by
# nobody. Either way `sparsevd_lab.compress` can remove it.
#
# **Predict.** How many of the 300 units of fc1 are alive (a kept input weight *and* a kept output
# weight)? The table above says fc1 keeps 1.6 % of its weights.
#
# **Exercise 2 (code, 10 min).** Write `alive_units(log_alpha_fc1, log_alpha_fc2, threshold)`: for every
# unit of fc1, True when it has at least one kept incoming weight (in fc1) and at least one kept outgoing
# weight (in fc2). A weight is kept when $\log\alpha$ is below the threshold (sec. 4.3), in both matrices.
# Mind which axis of each matrix belongs to the unit (torch stores out x in).

# %%
def alive_units(log_alpha_fc1, log_alpha_fc2, threshold):
    """True for every fc1 unit with a kept incoming weight and a kept outgoing weight."""
    ### BEGIN SOLUTION
    incoming = (log_alpha_fc1 < threshold).any(axis=1)  # fc1: a row per unit
    outgoing = (log_alpha_fc2 < threshold).any(axis=0)  # fc2: a column per fc1 unit
    return incoming & outgoing
    ### END SOLUTION


# %%
checks.check_alive_units(alive_units)

# %%
alive = alive_units(log_alpha["fc1"], log_alpha["fc2"], THRESHOLD)
print(f"fc1 units alive: {int(alive.sum())} of {alive.size} "
      f"({int((kept_per_unit > 0).sum())} have a kept input weight)")

# %% [markdown]
# ### The whole of fc2: rows and columns
#
# The paper's figure of a dense layer shows whole rows and columns gone. Here is all of fc2, $100\times300$
# (rows: its output units, columns: the fc1 units it reads), kept weights on the diverging map, dropped
# ones grey:

# %%
fig = plots.plot_layer_matrix(layers["fc2"].weight.detach().numpy(), log_alpha["fc2"], THRESHOLD, "fc2")
nb.savefig(fig, "04_fc2_matrix.png")
plt.show()

# %% [markdown]
# On the left, the grey columns are fc1 units that are dead (nothing to read) and the kept weights line
# up in the 67 columns of the live ones; the grey rows are fc2 units that receive nothing. On the right the
# rows and columns that keep a weight are gathered: a $50\times67$ block in which about a quarter of the
# weights are kept. Removing the dead rows and columns gives a much smaller layer, which is what
# `sparsevd_lab.compress` does (notebook 06 measures it).
#
# The snapshots of the shipped run show when this happens (kept masks every 20 epochs):

# %%
s300 = experiments.load_snapshots(result300)
over_time = pd.DataFrame({
    "epoch": s300["epoch"],
    "fc1 weights kept": s300["fc1_kept"].sum((1, 2)),
    "pixels read": s300["fc1_kept"].any(1).sum(1),
    "fc1 units alive": (s300["fc1_kept"].any(2) & s300["fc2_kept"].any(1)).sum(1),
    "fc2 units alive": (s300["fc2_kept"].any(2) & s300["fc3_kept"].any(1)).sum(1),
}).set_index("epoch")
over_time

# %% [markdown]
# Most of the thinning happens in the first 20 epochs, while the KL weight warms up (epochs 5 to 20 in
# the recipe); later epochs drop the stragglers.
#
# ## What to remember
# - Sparse VD drops whole units and input pixels, not just scattered weights: structure that
#   `compress` turns into a smaller dense model.
# - $\log\alpha$ separates into kept and dropped groups; the threshold sits in the gap. The dropped group
#   piles up at $\log\sigma^2 - \log 10^{-8}$ because $\theta \to 0$, not because of a clamp.
# - Draw dropped weights in a colour no kept weight can have, or the picture lies about what survives.
#
# Next: [05 · random labels](05_random_labels.ipynb). Words used here: [glossary](../docs/glossary.md).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
