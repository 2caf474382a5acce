"""Figures for notebooks 01 (the log-uniform prior, the posterior) and 02 (the KL approximation)."""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .. import theory
from .style import PALETTE, _fig_axes

__all__ = [
    "plot_priors",
    "plot_posterior",
    "plot_kl",
]

# --------------------------------------------------------------------------------------------------
# notebook 01: priors and posterior
# --------------------------------------------------------------------------------------------------

def plot_priors(w_max: float = 3.0, sigma: float = 1.0, b: float = 1.0):
    """Left: the log-uniform prior (unnormalised, 1/|w|, scaled to meet the Gaussian at |w| = 1)
    beside N(0, sigma^2) and Laplace(0, b) densities. Right: the same densities over log10|w|,
    where the log-uniform prior is flat (scale invariance)."""
    fig, (ax, ax2) = _fig_axes(2)
    w = np.linspace(-w_max, w_max, 1201)
    w = w[w != 0]
    scale = float(theory.gaussian_density(1.0, sigma))
    ax.plot(w, theory.gaussian_density(w, sigma), color=PALETTE[0], label=f"Gaussian, sigma={sigma:g}")
    ax.plot(w, theory.laplace_density(w, b), color=PALETTE[1], label=f"Laplace, b={b:g}")
    ax.plot(w, theory.log_uniform_density(w, scale), color=PALETTE[2], lw=2,
            label="log-uniform, c/|w| (improper)")
    ax.set_ylim(0, 1.2)
    ax.set(xlabel="weight w (unitless)", ylabel="density p(w) (1 / unit of w)",
           title="Priors over a weight")
    ax.legend(fontsize="small")
    u = np.linspace(-4, 1, 501)  # log10 |w|
    a = 10.0 ** u
    # density of log10|w| = p(|w|) * |w| * ln 10 (both signs)
    jac = a * math.log(10.0) * 2
    ax2.plot(u, theory.gaussian_density(a, sigma) * jac, color=PALETTE[0], label="Gaussian")
    ax2.plot(u, theory.laplace_density(a, b) * jac, color=PALETTE[1], label="Laplace")
    ax2.plot(u, np.full_like(u, scale * 2 * math.log(10.0)), color=PALETTE[2], lw=2,
             label="log-uniform: flat")
    ax2.set(xlabel="log10 |w| (decades)", ylabel="density of log10|w| (1 / decade)",
            title="The same priors over log10|w|")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig


# The posterior's fixed frame: the widget's theta slider spans [-2, 2], so [-4, 4] holds theta and its
# mirror image; a density of 1.5 holds N(1, 1 x 1^2) (peak 0.40) and N(0.5, 1 x 0.5^2) (peak 0.80).
POSTERIOR_W_MAX = 4.0
POSTERIOR_DENSITY_MAX = 1.5


def plot_posterior(theta: float, alpha: float, samples=None, w_max: float = POSTERIOR_W_MAX,
                   density_max: float = POSTERIOR_DENSITY_MAX):
    """The posterior q(w) = N(theta, alpha theta^2) (sec. 3 of the paper) on a fixed frame, w in
    [-w_max, w_max] and density in [0, density_max], whatever theta and alpha are: two settings
    compare by eye (halving theta halves the width and doubles the height). A peak above the frame is
    marked with its height. ``samples`` (draws of w) adds their histogram, as a density, with the
    samples whose sign differs from theta's in another colour and their share in the legend. The
    title gives the dropout rate alpha / (1 + alpha) and the standard deviation sqrt(alpha) |theta|."""
    sd = float(theory.posterior_std(theta, alpha))
    p = float(theory.dropout_rate(alpha))
    w = np.linspace(-w_max, w_max, 1201)
    fig, (ax,) = _fig_axes(1, size=(6.4, 3.6))
    title = f"alpha = {alpha:g}: dropout rate alpha/(1+alpha) = {p:.3f}, std = {sd:.3g}"
    if samples is not None:
        samples = np.asarray(samples, dtype=float).ravel()
        bins = np.linspace(-w_max, w_max, 81)
        weight = np.full(samples.shape, 1.0 / (samples.size * (bins[1] - bins[0])))  # a density
        flipped = np.sign(samples) != np.sign(theta) if theta != 0 else np.zeros(samples.shape, bool)
        ax.hist([samples[~flipped], samples[flipped]], bins=bins, weights=[weight[~flipped],
                weight[flipped]], stacked=True, color=[PALETTE[0], PALETTE[1]], alpha=0.55,
                label=[f"{samples.size:,} samples, sign of theta",
                       f"samples of the other sign: {flipped.mean():.1%}"])
        outside = float(np.mean(np.abs(samples) > w_max))
        if outside > 0:
            title += f"\n{outside:.1%} of the samples lie beyond |w| = {w_max:g}, outside the frame"
    if sd > 0:
        dens = np.exp(-0.5 * ((w - theta) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.plot(w, dens, color="0.15", lw=1.8, label=f"q(w), mean {theta:g}, variance {sd ** 2:.3g}")
        peak = 1.0 / (sd * math.sqrt(2 * math.pi))
        if peak > density_max:
            ax.annotate(f"peak {peak:.3g}, above the frame", xy=(theta, density_max),
                        xytext=(12, -12), textcoords="offset points", ha="left", va="top",
                        fontsize="small", bbox={"fc": "white", "ec": "none", "alpha": 0.8},
                        arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.axvline(theta, color=PALETTE[3], ls="--", label=f"theta = {theta:g}")
    ax.axvline(0, color="0.3", lw=1)
    ax.set_yticks(np.linspace(0, density_max, 7))  # the same ticks for every setting, whatever the title
    ax.set(xlim=(-w_max, w_max), ylim=(0, density_max), xlabel="weight w (unitless)",
           ylabel="density q(w) (1 / unit of w)", title=title)
    ax.legend(loc="upper left" if theta >= 0 else "upper right", fontsize="small")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# notebook 02: the KL approximation
# --------------------------------------------------------------------------------------------------

def plot_kl(log_alpha, reference, curves: Mapping[str, np.ndarray], reference_label: str = "exact"):
    """Left: -KL against log alpha, the reference and each named curve. Right: each curve minus the
    reference (the approximation error, in nats)."""
    la = np.asarray(log_alpha)
    fig, (ax, ax2) = _fig_axes(2)
    ax.plot(la, reference, color="0.2", lw=3, alpha=0.5, label=reference_label)
    for i, (name, y) in enumerate(curves.items()):
        ax.plot(la, y, color=PALETTE[i % len(PALETTE)], lw=1.3, label=name)
        ax2.plot(la, np.asarray(y) - reference, color=PALETTE[i % len(PALETTE)], label=name)
    ax.axvline(3.0, color="0.5", ls=":", lw=1)
    ax.set(xlabel="log alpha (dimensionless)", ylabel="-KL(q || p) (nats per weight)",
           title="Negative KL to the log-uniform prior")
    ax.legend(fontsize="small")
    ax2.axhline(0, color="0.3", lw=1)
    ax2.set(xlabel="log alpha (dimensionless)", ylabel=f"curve - {reference_label} (nats)",
            title="Approximation error")
    ax2.legend(fontsize="small")
    fig.tight_layout()
    return fig
