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
# # 05 · Random labels: memorise or prune?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sparsevd-lab/sparsevd-lab/blob/main/notebooks/05_random_labels.ipynb)
#
# **Learning goals.** After this notebook you can
# 1. explain the random-labels test of Zhang et al. (2017) and why ordinary regularisers such as
#    binary dropout do not stop a network from memorising noise;
# 2. read from the training curves that Sparse VD, trained on the same noise, removes (almost) every
#    weight and predicts a constant instead;
# 3. say what this tells us about Sparse VD as a regulariser.
#
# **Time on CPU:** under a minute in default and fast mode (the curves come from the shipped results;
# `SPARSEVD_RETRAIN=1` reruns a small version live).
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017, sec. 5.3; Zhang, Bengio, Hardt, Recht, Vinyals,
# [*Understanding Deep Learning Requires Rethinking Generalization*](https://arxiv.org/abs/1611.03530), ICLR 2017;
# Srivastava et al., [*Dropout*](https://jmlr.org/papers/v15/srivastava14a.html), JMLR 2014.

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
from sparsevd_lab import plots

plots.use_style()

# %% tags=["parameters"]
# Parameters (papermill: -p NAME VALUE)
DATASET = nb.DATASET  # "offline-digits" (no network); "mnist" downloads full MNIST (opt-in)
LABEL_SEED = 0  # the seed of the random training labels

# %% [markdown]
# ## 1. The experiment
#
# Replace every training label by a class drawn uniformly at random; keep the test labels real. There
# is nothing to learn: the best a model can do on the test set is chance, 10 %. A large enough network
# can still reach 100 % *training* accuracy by memorising each image's random label (Zhang et al.
# 2017), and binary dropout (Srivastava et al. 2014) does not prevent it.
#
# Sparse VD behaves differently. The data term wants to memorise, but every memorised bit costs weights,
# and under the log-uniform prior a weight whose removal does not hurt the *expected* likelihood is
# cheaper dropped. With random labels no weight helps on average, so the KL wins everywhere.
#
# About a tenth of the random labels coincide with the true ones, by chance:

# %%
# NBVAL_CHECK_OUTPUT
data = svd.load_dataset(DATASET, verbose=False)
noisy = svd.random_labels(data, seed=LABEL_SEED)
print(f"{noisy.train_size} training labels replaced; "
      f"{float((noisy.y_train == data.y_train).float().mean()):.2f} of them equal the true label")

# %% [markdown]
# ## 2. Training curves
#
# The shipped run trains two LeNet-300-100 networks on these labels with the same optimiser
# (Adam $10^{-3}$, no learning-rate decay, so that memorisation can happen): a dense one with binary
# dropout $p = 0.5$ after each hidden layer, and a Sparse VD one with the authors' KL warm-up.

# %%
result = nb.shipped_result("random-labels", dataset=DATASET,
                           live_epochs=4)
hist = {name: pd.DataFrame(h) for name, h in result["results"]["history"].items()}
fig = plots.plot_history({"dense + dropout": hist["dense"], "Sparse VD": hist["sparse-vd"]},
                         metrics=("train_acc", "test_acc"),
                         title="Random training labels (solid: train, dashed: test)")
fig.axes[0].axhline(100 * result["results"]["summary"]["chance"], color="0.4", ls=":", lw=1)
nb.savefig(fig, "05_random_labels.png")
plt.show()

# %% [markdown]
# *Left:* the dense network's training accuracy (solid) climbs towards 100 % while its test accuracy
# (dashed) stays at chance (dotted line): pure memorisation. The Sparse VD network's training accuracy
# stays at chance. *Right:* the share of weights Sparse VD drops climbs to (almost) 100 % once the KL
# weight is on; the dense network has no $\log\alpha$ and drops nothing (drawn at 0).

# %%
s = result["results"]["summary"]
summary = pd.DataFrame({name: s[key] for name, key in (("dense + dropout", "dense"),
                                                        ("Sparse VD", "sparse-vd"))}).T
summary = summary.rename(columns={"test_prediction_majority_fraction": "share of the most frequent "
                                  "test prediction", "distinct_test_predictions": "distinct test "
                                  "predictions"})
print(f"{result['provenance']['epochs_note']}; chance = {s['chance']:.2f}")
summary.round(3)

# %% [markdown]
# The last two columns show what Sparse VD predicts: with (almost) every weight gone, the output no
# longer depends on the input, so every test image gets the same class (one distinct prediction, or very
# few). A constant is the honest answer to noise: it is what the data supports.
#
# The claims of the paper, checked on the shipped run:

# %%
pd.Series(s["claims"], name="holds").to_frame()

# %% [markdown]
# ## What to remember
# - A network with binary dropout memorises random labels: train accuracy to 100 %, test at chance.
# - Sparse VD on the same labels removes (almost) all weights and predicts a constant: its KL term
#   charges for every weight that does not help the expected likelihood.
# - This is evidence that Sparse VD's sparsity follows the information in the data, not just the size
#   of the network.
#
# Next: [06 · compression tables and sliders](06_compression_tables.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
