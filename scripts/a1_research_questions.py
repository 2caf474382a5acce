"""The answers to A1's research questions, measured with the solution's own code.

    python scripts/a1_research_questions.py            # 8 short trainings: 5-15 minutes on 2 CPU cores
    python scripts/a1_research_questions.py --parts 3,4  # only the questions without training (seconds)

Runs the code cells of notebooks/solutions/A1_sparse_vd_from_scratch.py that define the exercises
(not the checks, not the notebook's own training), then: (1) the maximum KL weight, (2) the initial
log sigma^2, each a 30-epoch default-mode run on the offline digits; (3) eq. 14 against the exact
-KL; (4) the gradient variance of the LRT against one weight sample shared by the batch. The
lecturers' guide quotes its output.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["SPARSEVD_FAST"] = "0"

import jupytext  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "solutions" / "A1_sparse_vd_from_scratch.py"
SKIP = ("checks.check_", "model = my_lenet_300_100()", "dense = nn.Sequential", "notebook finished")


def solution_namespace() -> dict:
    ns: dict = {"__name__": "a1_solution"}
    for cell in jupytext.read(SOURCE).cells:
        if cell.cell_type == "code" and not any(s in cell.source for s in SKIP):
            exec(compile(cell.source, str(SOURCE), "exec"), ns)  # noqa: S102 - our own notebook
    return ns


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="1,2,3,4", help="which questions, e.g. 3,4")
    parts = {int(p) for p in parser.parse_args(argv).parts.split(",")}
    torch.set_num_threads(1)
    ns = solution_namespace()
    train, make, data = ns["train"], ns["my_lenet_300_100"], ns["data"]
    epochs = ns["EPOCHS"]
    print(f"{data.name}: {data.train_size} training / {len(data.x_test)} test examples, {epochs} epochs")

    rows = []
    for w in ((0.1, 0.3, 1.0, 3.0) if 1 in parts else ()):
        h = train(make(), data, epochs, max_kl_weight=w)
        rows.append({"max_kl_weight": w, "test_acc": h.test_acc.iloc[-1],
                     "compression": h.compression.iloc[-1]})
        print(rows[-1], flush=True)
    if rows:
        print("\n(1) the maximum KL weight\n" + pd.DataFrame(rows).round(3).to_string(index=False))

    rows = []
    for ls in ((-12.0, -10.0, -6.0, -3.0) if 2 in parts else ()):
        h = train(make(log_sigma2_init=ls), data, epochs)
        first = make(log_sigma2_init=ls)
        la = torch.cat([m.log_alpha.detach().flatten() for m in first.modules() if hasattr(m, "log_sigma2")])
        rows.append({"log_sigma2_init": ls, "median log alpha at init": float(la.median()),
                     "test_acc epoch 1": h.test_acc.iloc[0], "test_acc": h.test_acc.iloc[-1],
                     "compression": h.compression.iloc[-1]})
        print(rows[-1], flush=True)
    if rows:
        print("\n(2) the initial log sigma^2\n" + pd.DataFrame(rows).round(3).to_string(index=False))

    from sparsevd_lab import theory

    if 3 in parts:
        grid = np.linspace(-10, 10, 401)
        err = theory.neg_kl_sigmoid(grid) - theory.neg_kl_exact(grid)
        i = int(np.abs(err).argmax())
        print(f"\n(3) eq. 14 against the exact -KL on log alpha in [-10, 10]: largest error "
              f"{abs(err[i]):.4f} nats at log alpha = {grid[i]:.2f}; mean |error| "
              f"{np.abs(err).mean():.4f}")
    if 4 not in parts:
        return 0
    rows = []
    g = torch.Generator().manual_seed(0)
    for batch in (10, 100):
        x = data.x_train[:batch].flatten(1)
        y = data.y_train[:batch]
        weight = 0.05 * torch.randn(10, 784, generator=g)
        log_sigma2 = torch.full((10, 784), -4.0)
        df = theory.gradient_variance(x, y, weight, log_sigma2, n_repeats=100)
        rows.append({"batch": batch, **{f"{e}, theta": df.loc[e, "grad variance, theta"] for e in df.index}})
    table = pd.DataFrame(rows).set_index("batch")
    print("\n(4) variance of the minibatch gradient (mean over the parameters), a 784-10 Sparse VD "
          "classifier, theta ~ N(0, 0.05^2), log sigma^2 = -4\n" + table.to_string(float_format="%.3g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
