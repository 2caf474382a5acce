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
# 3. compute the KL's gradient in the $(\log|\theta|, \log\sigma^2)$ plane and watch weights of a live
#    run follow it over the $\log\alpha = 3$ line to the wall (exercise 1): why weights fall into sparsity;
# 4. find which input pixels and which hidden units a trained LeNet-300-100 still uses (exercise 2),
#    and see whole rows and columns of a dense layer go.
#
# **Time on CPU:** about a minute in default mode, less in fast mode: one live run of a few seconds
# (150 steps of a Sparse VD softmax classifier on 1,000 offline digits; 40 in fast mode); the rest comes
# from the shipped results (LeNet-5 on full Fashion-MNIST, 100 epochs of Sparse VD; LeNet-300-100 on
# full Fashion-MNIST with the paper's 200-epoch recipe). Default mode also writes an animation to
# `figures/` and shows it. About 45 minutes of class with the two exercises (20 + 15 minutes) and the
# prediction questions. Questions marked **Predict** record your answer with
# `predictions.ask(...)`: write it into the variable `MY_...` of its cell before you run the cell; a later
# cell shows it beside the measured value.
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

import torch

import sparsevd_lab as svd
from sparsevd_lab import checks, experiments, plots, predictions, widgets

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
DATASET = "fashion-mnist"  # the shipped LeNet-5 snapshots; "offline-digits": the run on 3,500 digits
DATASET_300 = "fashion-mnist"  # the shipped LeNet-300-100 (200 epochs, the paper's recipe)
THRESHOLD = 3.0  # log alpha at or above which a weight is dropped
FLOW_STEPS = 40 if nb.FAST else 150  # steps of the live run of section 3 (full batch of 1,000 digits)
SEED = 0

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
# The first, a middle and the last snapshot (the table under each counts the kept weights of every
# snapshotted layer; the animation below shows every snapshot):

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
# it **piles up between 11 and 14** (fc1 in a sharp peak near 13). That is not a clamp: the package does
# not clamp $\log\alpha$ (the authors' code clamps it to [-10, 10]; A1's exercise 5 and the
# [glossary](../docs/glossary.md) say what each choice costs). The layer computes
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
# ### How weights get there: the KL's pull in the $(\log|\theta|, \log\sigma^2)$ plane
#
# A weight is a point $(\log|\theta|, \log\sigma^2)$; it is dropped above the line
# $\log\alpha = \log\sigma^2 - \log(\theta^2 + 10^{-8}) = 3$. The data term pulls each weight towards
# whatever fits the data; the KL term (eq. 14, a function of $\log\alpha$ alone) pulls every weight the
# same way. Which way, and how hard, is one application of the chain rule.
#
# **Exercise 1 (code, 20 min).** Write `kl_gradient(log_abs_theta, log_sigma2)`: for numpy arrays of
# points, the pair $(\partial\,\mathrm{KL}/\partial\log|\theta|,\ \partial\,\mathrm{KL}/\partial\log\sigma^2)$ of one weight's KL,
#
# $$\mathrm{KL}(\log\alpha) = k_1\,\mathrm{sigmoid}\big(-(k_2 + k_3\log\alpha)\big) + \tfrac12\log(1 + e^{-\log\alpha}),
# \qquad \log\alpha = \log\sigma^2 - \log(\theta^2 + 10^{-8}),$$
#
# with $k_1 = 0.63576$, $k_2 = 1.87320$, $k_3 = 1.48695$ (eq. 14 with $C = -k_1$, as `sparsevd_lab.layers`
# computes it, $10^{-8}$ included). By hand: first $d\,\mathrm{KL}/d\log\alpha$ (the derivative of
# $\mathrm{sigmoid}(z)$ is $\mathrm{sigmoid}(z)(1 - \mathrm{sigmoid}(z))$, that of $\log(1+e^{-x})$ is $-\mathrm{sigmoid}(-x)$), then
# $d\log\alpha/d\log|\theta|$ (write $\theta^2 = e^{2\log|\theta|}$) and $d\log\alpha/d\log\sigma^2$. Or with
# `torch.autograd` on float64 tensors. The figure below draws your function.

# %%
def kl_gradient(log_abs_theta, log_sigma2):
    """(d KL / d log|theta|, d KL / d log sigma^2) of one weight's KL (eq. 14), elementwise."""
    ### BEGIN SOLUTION
    k1, k2, k3 = 0.63576, 1.87320, 1.48695  # eq. 14
    theta2 = np.exp(2 * np.asarray(log_abs_theta, dtype=float))
    log_alpha = np.asarray(log_sigma2, dtype=float) - np.log(theta2 + 1e-8)
    s = 1 / (1 + np.exp(-(k2 + k3 * log_alpha)))  # sigmoid(k2 + k3 log alpha)
    dkl = -k1 * k3 * s * (1 - s) - 0.5 / (1 + np.exp(log_alpha))  # d KL / d log alpha (< 0)
    dla_dtheta = -2 * theta2 / (theta2 + 1e-8)  # d log alpha / d log|theta|: -2, and 0 at the wall
    return dkl * dla_dtheta, dkl  # d log alpha / d log sigma^2 = 1
    ### END SOLUTION


# %%
checks.check_kl_gradient(kl_gradient)

# %% [markdown]
# Now a live run: a Sparse VD softmax classifier (one `LinearSVDO(784, 10)`, 7,840 weights) on 1,000
# offline digits, full batch, KL weight 1, Adam at a learning rate of 0.03 (ten times the usual, so that
# `FLOW_STEPS` steps, a few seconds, show what an epoch-long run does). Every weight starts at
# $\log\sigma^2 = -10$ and $|\theta| \le 1/\sqrt{784}$; we record every weight's position every 5 steps.
#
# **Predict.** With $N = 1{,}000$ examples the KL weighs a lot. What share of the 7,840 weights will be
# dropped ($\log\alpha \ge 3$) after the run, in %?

# %%
MY_DROPPED = None  # your prediction: a number, in %
predictions.ask("04-flow-dropped", "Share of the classifier's 7,840 weights dropped after the live run (%)",
                kind="number", prediction=MY_DROPPED)

# %%
svd.set_seed(SEED)
digits = svd.load_dataset("offline-digits", verbose=False).subset(1000, 500)
x, y = digits.x_train.flatten(1), digits.y_train
layer = svd.LinearSVDO(784, 10)
net = torch.nn.Sequential(torch.nn.Flatten(), layer)
objective = svd.SGVLB(net, train_size=len(y), kl_weight=1.0)  # eq. 3 / N
optimizer = torch.optim.Adam(net.parameters(), lr=0.03)
path_theta, path_ls2 = [], []  # (records, 7840): log|theta| and log sigma^2 of every weight
net.train()
for step in range(FLOW_STEPS + 1):
    if step % 5 == 0:
        with torch.no_grad():
            path_theta.append(layer.weight.abs().log().flatten().numpy().copy())
            path_ls2.append(layer.log_sigma2.flatten().numpy().copy())
    if step < FLOW_STEPS:
        loss = objective(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
path_theta, path_ls2 = np.array(path_theta), np.array(path_ls2)
end_la = layer.log_alpha.detach().flatten().numpy()
net.eval()
with torch.no_grad():
    flow_acc = float((net(digits.x_test.flatten(1)).argmax(1) == digits.y_test).float().mean())
print(f"{FLOW_STEPS} steps: {100 * (end_la >= THRESHOLD).mean():.1f} % of the weights dropped, "
      f"test accuracy {100 * flow_acc:.1f} %")

# %%
predictions.reveal("04-flow-dropped", round(100 * float((end_la >= THRESHOLD).mean()), 1))

# %% [markdown]
# 25 weights that end dropped and 25 that end kept (ringed: the start; filled: the end), over the arrows
# of **your** `kl_gradient` (the KL's descent direction, unit length; the shading is its size):

# %%
rng = np.random.default_rng(SEED)
dropped_ids, kept_ids = np.flatnonzero(end_la >= THRESHOLD), np.flatnonzero(end_la < THRESHOLD)
chosen = np.concatenate([rng.choice(dropped_ids, min(25, len(dropped_ids)), replace=False),
                         rng.choice(kept_ids, min(25, len(kept_ids)), replace=False)])
fig = plots.plot_kl_flow(kl_gradient, path_theta[:, chosen], path_ls2[:, chosen], THRESHOLD)
nb.savefig(fig, "04_kl_flow.png")
plt.show()
moved = pd.DataFrame({"ends": np.where(end_la >= THRESHOLD, "dropped", "kept"),
                      "median change of log|theta|": path_theta[-1] - path_theta[0],
                      "median change of log sigma^2": path_ls2[-1] - path_ls2[0],
                      "share beyond the wall (theta^2 < 1e-8)": path_theta[-1] < 0.5 * np.log(1e-8)})
moved.groupby("ends").agg({"median change of log|theta|": "median", "median change of log sigma^2": "median",
                           "share beyond the wall (theta^2 < 1e-8)": "mean"}).round(2).assign(
    weights=moved["ends"].value_counts())

# %% [markdown]
# Your gradient says the KL pushes **every** weight the same way: $\partial\,\mathrm{KL}/\partial\log\alpha < 0$
# everywhere, so descent raises $\log\alpha$, by lowering $\log|\theta|$ (twice as fast, the factor $-2$)
# and raising $\log\sigma^2$. Only the data term can hold a weight back. The weights the data does not
# need follow the arrows: in this run they move almost only leftwards (the median change of
# $\log\sigma^2$ in the table is small, that of $\log|\theta|$ large and negative), cross the line
# $\log\alpha = 3$, and run into the wall $\theta^2 = 10^{-8}$. Past the wall the factor
# $\theta^2/(\theta^2 + 10^{-8})$ is 0: the arrows turn straight up, and the shading shows the push
# fading, since $d\,\mathrm{KL}/d\log\alpha \to 0$ for large $\alpha$. There the weights stop, at
# $\log\alpha \approx \log\sigma^2 + 18.4$: the pile-up of the histogram above. The kept weights are those
# whose data gradient wins: their $|\theta|$ grows, and $\log\sigma^2$ rises with it, so that they stay below the
# line. (In default mode, 150 steps, the table shows this; the 40 steps of fast mode are too few for the
# kept weights to turn round, or for the dropped ones to reach the wall.)
#
# ### Which input pixels and which units does the trained net still use?
#
# Every input pixel feeds 300 weights of fc1 (one column of its $300\times784$ weight matrix). A pixel the
# network still reads keeps at least one of them.
#
# A unit of fc1 with no kept input weight outputs a constant; a unit with no kept output weight (in fc2)
# is read by nobody. Either way `sparsevd_lab.compress` can remove it.
#
# **Predict** (two numbers). fc1 keeps 1.6 % of its weights (the table above). Of the 784 pixels of a
# Fashion-MNIST image, how many does fc1 still read? And how many of its 300 units are alive (a kept
# input weight *and* a kept output weight)?

# %%
MY_PIXELS = None  # your prediction: a number of pixels
predictions.ask("04-pixels-read", "Pixels (of 784) that fc1 still reads", kind="number",
                prediction=MY_PIXELS)
MY_UNITS = None  # your prediction: a number of units
predictions.ask("04-units-alive", "fc1 units (of 300) alive", kind="number",
                prediction=MY_UNITS)

# %% [markdown]
# **Exercise 2 (code, 15 min).** Two functions on the trained model's $\log\alpha$ arrays (torch's layout:
# one row per output unit, one column per input). A weight is kept when $\log\alpha$ is below the
# threshold (sec. 4.3 of the paper), in every matrix.
# - `pixels_used(log_alpha, threshold)`: for fc1's `log_alpha` (one column per input pixel), a boolean
#   vector with one value per pixel, True when at least one of the pixel's weights is kept.
# - `alive_units(log_alpha_fc1, log_alpha_fc2, threshold)`: for every unit of fc1, True when it has at
#   least one kept incoming weight (in fc1) and at least one kept outgoing weight (in fc2). Mind which
#   axis of each matrix belongs to the unit.

# %%
def pixels_used(log_alpha, threshold):
    """True for every input pixel (column of log_alpha) with at least one kept weight."""
    ### BEGIN SOLUTION
    kept = log_alpha < threshold  # a weight is kept below the threshold
    return kept.any(axis=0)  # a column = one pixel's weights to all units
    ### END SOLUTION


def alive_units(log_alpha_fc1, log_alpha_fc2, threshold):
    """True for every fc1 unit with a kept incoming weight and a kept outgoing weight."""
    ### BEGIN SOLUTION
    incoming = (log_alpha_fc1 < threshold).any(axis=1)  # fc1: a row per unit
    outgoing = (log_alpha_fc2 < threshold).any(axis=0)  # fc2: a column per fc1 unit
    return incoming & outgoing
    ### END SOLUTION


# %%
checks.check_pixels_used(pixels_used)
checks.check_alive_units(alive_units)

# %%
used = pixels_used(log_alpha["fc1"], THRESHOLD)
alive = alive_units(log_alpha["fc1"], log_alpha["fc2"], THRESHOLD)
kept_per_unit = (log_alpha["fc1"] < THRESHOLD).sum(1)
print(f"fc1 reads {int(used.sum())} of {used.size} pixels ({used.size - int(used.sum())} are never read)")
print(f"fc1 units alive: {int(alive.sum())} of {alive.size} "
      f"({int((kept_per_unit > 0).sum())} have a kept input weight)")
predictions.reveal("04-pixels-read", int(used.sum()))
predictions.reveal("04-units-alive", int(alive.sum()))

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
# 233 units keep nothing at all: the units that exercise 2 found dead.

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
# On the left, the dark columns are the fc1 units that are dead (nothing to read: exercise 2's dead
# units) and the dark rows are fc2 units that receive nothing; the kept weights line up in the 67 light
# columns of the live units, grey where a single weight of a live unit is dropped. On the right the
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
# - The KL alone pushes every weight towards larger $\log\alpha$: $|\theta|$ down (twice as fast) and
#   $\sigma^2$ up. Only the data term holds a weight back; the weights it does not hold cross the threshold
#   and stop at the wall $\theta^2 = 10^{-8}$, where the push fades.
#
# Next: [05 · random labels](05_random_labels.ipynb). Words used here: [glossary](../docs/glossary.md).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
