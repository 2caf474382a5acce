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
# 1. explain the random-labels test of Zhang et al. (2017) and what "chance" means in it;
# 2. read from training curves what binary dropout and Sparse VD do with labels that carry no
#    information, and derive what a network that ignores its input should predict;
# 3. say what this tells us about Sparse VD as a regulariser.
#
# **Time on CPU:** under a minute in default and fast mode (the curves come from the shipped results;
# `SPARSEVD_RETRAIN=1` reruns a small version live), plus about 25 minutes for the two exercises.
#
# **Exercises:** write a function; the cell after it checks it and prints `OK:` or names the slip.
# **Predict:** write your guess into the `MY_...` variable and run the cell (it is saved in
# `predictions.json`); a later cell prints it beside the measured value. Terms (*sparsity*, *KL weight*,
# ...): [glossary](../docs/glossary.md).
#
# **Papers.** Molchanov, Ashukha, Vetrov, [*Variational Dropout Sparsifies Deep Neural Networks*](https://arxiv.org/abs/1701.05369),
# ICML 2017, sec. 5.3; Zhang, Bengio, Hardt, Recht, Vinyals,
# [*Understanding Deep Learning Requires Rethinking Generalization*](https://arxiv.org/abs/1611.03530), ICLR 2017;
# Srivastava et al., [*Dropout*](https://jmlr.org/papers/v15/srivastava14a.html), JMLR 2014.

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
import torch

import sparsevd_lab as svd
from sparsevd_lab import checks, plots, predictions

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
# without a regulariser can still reach 100 % *training* accuracy by memorising each image's random label
# (Zhang et al. 2017). What does a regulariser change?
#
# What does "chance" mean here? A prediction made without looking at the true label is right with
# probability $\sum_k P(\text{prediction} = k)\,P(\text{label} = k)$: $1/K$ when every class is equally
# frequent, but not in general (a network that always answers "3" scores the share of 3s).
#
# **Exercise 1 (reasoning, then code, about 10 min).** Write `chance_accuracy(pred_counts, label_counts)`: the expected accuracy of
# predictions that are independent of the true labels, given how often each class is predicted
# (`pred_counts[k]`) and how often it is the true label (`label_counts[k]`).

# %%
def chance_accuracy(pred_counts, label_counts):
    """Expected accuracy of predictions independent of the labels, from per-class counts."""
    ### BEGIN SOLUTION
    p = np.asarray(pred_counts, dtype=float)
    q = np.asarray(label_counts, dtype=float)
    return float((p / p.sum()) @ (q / q.sum()))  # P(pred = k) P(label = k), summed over k
    ### END SOLUTION


# %%
checks.check_chance_level(chance_accuracy)

# %% [markdown]
# The random training labels are such predictions of the true ones. About a tenth of them coincide with
# the true label, by chance:

# %%
# NBVAL_CHECK_OUTPUT
data = svd.load_dataset(DATASET, verbose=False)
noisy = svd.random_labels(data, seed=LABEL_SEED)
K = int(data.y_train.max()) + 1
expected = chance_accuracy(torch.bincount(noisy.y_train, minlength=K),
                           torch.bincount(data.y_train, minlength=K))
print(f"{noisy.train_size} training labels replaced; "
      f"{float((noisy.y_train == data.y_train).float().mean()):.2f} of them equal the true label "
      f"(chance: {expected:.2f})")

# %% [markdown]
# ## 2. Training curves
#
# The shipped run trains two LeNet-300-100 networks on these labels for 200 epochs with the same optimiser
# (Adam $10^{-3}$, no learning-rate decay): a dense one with binary
# dropout $p = 0.5$ after each hidden layer, and a Sparse VD one with the authors' KL warm-up (KL weight
# 0 for 5 epochs, then up to 1 by epoch 20).
#
# **Predict** (before you run the next cell). After 200 epochs, what are the dense + dropout net's
# training accuracy (%), the Sparse VD net's training accuracy (%), and the share of its weights that
# Sparse VD drops (%)? Write your three numbers and run the cell.

# %%
MY_DENSE_TRAIN = None  # your prediction: training accuracy of dense + dropout, in % (0-100)
MY_SVD_TRAIN = None  # your prediction: training accuracy of Sparse VD, in %
MY_SVD_DROPPED = None  # your prediction: weights dropped by Sparse VD, in %
predictions.ask("05-dense-train", "Random labels, 200 epochs: training accuracy (%) of the dense "
                "network with binary dropout?", prediction=MY_DENSE_TRAIN)
predictions.ask("05-svd-train", "Random labels, 200 epochs: training accuracy (%) of Sparse VD?",
                prediction=MY_SVD_TRAIN)
predictions.ask("05-svd-dropped", "Random labels, 200 epochs: weights dropped (%) by Sparse VD?",
                prediction=MY_SVD_DROPPED)

# %%
result = nb.shipped_result("random-labels", dataset=DATASET,
                           live_epochs=4)
hist = {name: pd.DataFrame(h) for name, h in result["results"]["history"].items()}
s = result["results"]["summary"]
fig = plots.plot_history({"dense + dropout": hist["dense"], "Sparse VD": hist["sparse-vd"]},
                         metrics=("train_acc", "test_acc"), zoom=(7, 13),
                         hlines={f"chance, {100 * s['chance']:.0f} %": 100 * s["chance"]},
                         title="Random training labels (solid: train, dashed: test)")
nb.savefig(fig, "05_random_labels.png")
plt.show()

# %%
predictions.reveal("05-dense-train", 100 * s["dense"]["train_acc"])
predictions.reveal("05-svd-train", 100 * s["sparse-vd"]["train_acc"])
predictions.reveal("05-svd-dropped", s["sparse-vd"]["sparsity_%"])

# %% [markdown]
# *Left:* the dense network's training accuracy (solid) climbs towards 100 % while its test accuracy
# (dashed) stays at chance (dotted line): pure memorisation, which binary dropout (Srivastava et al. 2014)
# does not prevent. The Sparse VD network's training accuracy rises a little in the first epochs, while its
# KL weight is 0 and it is as free to memorise as the dense net, then falls as soon as the KL weight is on.
# *Middle:* the same curves near chance: Sparse VD settles at 10.8 %, a little above the 10 % line; why not
# exactly at chance is exercise 2. *Right:* the share of weights Sparse VD drops climbs to 100 % within a few
# epochs of the warm-up; the dense network has no $\log\alpha$ and drops nothing (drawn at 0).
#
# Why the difference: the data term wants to memorise, but every memorised bit costs weights, and under the
# log-uniform prior a weight whose removal does not hurt the *expected* likelihood is cheaper dropped. With
# random labels no weight helps on average, so the KL wins everywhere.

# %%
summary = pd.DataFrame({name: s[key] for name, key in (("dense + dropout", "dense"),
                                                        ("Sparse VD", "sparse-vd"))}).T
summary = summary.rename(columns={"test_prediction_majority_fraction": "share of the most frequent "
                                  "test prediction", "distinct_test_predictions": "distinct test "
                                  "predictions"})
print(f"{result['provenance']['epochs_note']}; chance = {s['chance']:.2f}")
summary.round(3)

# %% [markdown]
# The last two columns show what Sparse VD predicts: with every weight gone, the output no longer depends
# on the input, so every test image gets the same class (one distinct prediction). A network without
# weights is not without parameters: its biases remain, and they set that constant output.
#
# **Predict.** The best constant output (the same probability vector for every input) on these random
# training labels: is its mean cross-entropy above, equal to, or below $\log 10 = 2.3026$ nats?

# %%
LOSS_CHOICES = ["above log 10", "equal to log 10", "below log 10"]
MY_LOSS = None  # your prediction: one of LOSS_CHOICES
predictions.ask("05-constant-loss", "The best constant predictor of the random training labels: is its "
                "mean cross-entropy above, equal to or below log 10 nats?", kind="choice",
                choices=LOSS_CHOICES, prediction=MY_LOSS)

# %% [markdown]
# **Exercise 2 (reasoning, then code, about 15 min).** Write `constant_prediction(y_train, n_classes)`: for the best constant
# predictor on the labels `y_train` (the probability vector $p$, the same for every input, that
# minimises the mean cross-entropy $-\frac1N\sum_n \log p_{y_n}$), return the class it predicts, its
# training accuracy (a fraction) and its mean cross-entropy (nats).

# %%
def constant_prediction(y_train, n_classes):
    """(class, train accuracy, mean cross-entropy in nats) of the best constant predictor of y_train."""
    ### BEGIN SOLUTION
    share = np.bincount(np.asarray(y_train), minlength=n_classes) / len(y_train)
    # the minimiser of -sum_k share_k log p_k over probability vectors p is p = share (Gibbs'
    # inequality); its loss is the entropy of the shares
    nonzero = share[share > 0]
    return int(share.argmax()), float(share.max()), float(-(nonzero * np.log(nonzero)).sum())
    ### END SOLUTION


# %%
checks.check_random_labels_prediction(constant_prediction)

# %% [markdown]
# Now on the very labels of the shipped run, against what its Sparse VD network did in its last epoch
# (training accuracy and the mean cross-entropy of the data term, both measured in train mode):

# %%
if result["live"]:
    print("NOTE: a small live stand-in (a subset, few epochs), not the shipped run; its labels are "
          "not exactly these, so the two lines below need not agree")
cls, acc, loss = constant_prediction(noisy.y_train.numpy(), K)
sv_hist = hist["sparse-vd"]
on_test = chance_accuracy(np.eye(K)[cls], torch.bincount(data.y_test, minlength=K))
print(f"best constant: class {cls}, train accuracy {acc:.3f}, train loss {loss:.4f} nats "
      f"(log {K} = {np.log(K):.4f})")
print(f"Sparse VD, epoch {int(sv_hist['epoch'].iloc[-1])}: train accuracy "
      f"{sv_hist['train_acc'].iloc[-1]:.3f}, data loss {sv_hist['data_loss'].iloc[-1]:.4f} nats; "
      f"test accuracy {sv_hist['test_acc'].iloc[-1]:.3f} (a constant {cls} scores {on_test:.3f})")
predictions.reveal("05-constant-loss", LOSS_CHOICES[0 if loss > np.log(K) + 1e-9
                                                    else 2 if loss < np.log(K) - 1e-9 else 1])

# %% [markdown]
# Sparse VD found exactly the best constant: its training accuracy is the share of the most frequent
# random label (not 1/10), and its data loss is the entropy of the random labels, a little below
# $\log 10$. On the test set a constant scores the share of its class, and the test set here is balanced,
# so that is exactly chance. The dense net's test accuracy is within one binomial standard error
# ($\sqrt{0.1 \cdot 0.9 / 1000} \approx 0.01$) of chance as well: neither network learned anything that
# transfers, but only one of them admits it.
#
# The claims of the paper, checked on the shipped run:

# %%
pd.Series(s["claims"], name="holds").to_frame()

# %% [markdown]
# ## What to remember
# - A network with binary dropout memorises random labels: train accuracy to 98 %, test at chance.
# - Sparse VD on the same labels removes all weights and predicts a constant: its KL term charges for
#   every weight that does not help the expected likelihood. The constant is the best one: the label
#   frequencies, with the entropy of the labels as its loss.
# - "Chance" is $\sum_k P(\text{prediction} = k)\,P(\text{label} = k)$; it is $1/K$ only for balanced classes.
# - This is evidence that Sparse VD's sparsity follows the information in the data, not just the size
#   of the network.
#
# Next: [06 · compression tables and sliders](06_compression_tables.ipynb).

# %%
print(f"notebook finished in {nb.elapsed()} ({nb.mode()} mode)")
