"""A2's research question 3, measured apart: does a dense product get faster when most weights are 0?

    python scripts/a2_timing_noise.py     # about a minute

Times three LeNet-300-100 chains with the same shapes and the same code (F.linear + ReLU): the
shipped dense model, the shipped Sparse VD model with its dropped weights set to 0 (the masked net),
and the Sparse VD theta without the mask, in three rounds that alternate the order, at batch 1,000,
with one thread (warm-up 3 calls, median of 31). The spread of the ratios between rounds is the
noise of the machine; the lecturers' guide quotes it.
"""
import statistics, time, torch, torch.nn.functional as F
from sparsevd_lab import experiments
import sparsevd_lab
torch.set_num_threads(1)
d = experiments.load_model("lenet300", "fashion-mnist", method="dense")
s = experiments.load_model("lenet300", "fashion-mnist", method="sparse-vd")
dw = [m.weight.detach().clone() for m in d.modules() if isinstance(m, torch.nn.Linear)]
db = [m.bias.detach().clone() for m in d.modules() if isinstance(m, torch.nn.Linear)]
L = [m for m in s.modules() if isinstance(m, sparsevd_lab.LinearSVDO)]
mw = [(m.weight * (m.log_alpha < m.threshold)).detach() for m in L]
mb = [m.bias.detach().clone() for m in L]
sw = [m.weight.detach().clone() for m in L]  # Sparse VD theta, unmasked
def chain(W, B, x):
    for i, (w, b) in enumerate(zip(W, B)):
        x = F.linear(x, w, b); x = torch.relu(x) if i < 2 else x
    return x
x = torch.randn(1000, 784)
data = sparsevd_lab.load_fashion_mnist(verbose=False); xt = data.x_test[:1000].flatten(1)
def med(f, x, r=31):
    for _ in range(3): f(x)
    t = []
    for _ in range(r):
        a = time.perf_counter(); f(x); t.append(time.perf_counter() - a)
    return 1000 * statistics.median(t)
with torch.no_grad():
    for rnd in range(3):
        for name, W, B in [("masked", mw, mb), ("dense", dw, db), ("svd theta unmasked", sw, mb)]:
            print(rnd, name, "test x %.2f" % med(lambda z: chain(W, B, z), xt), "random x %.2f" % med(lambda z: chain(W, B, z), x))
