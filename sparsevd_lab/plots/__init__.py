"""Figures for the notebooks. Every function returns a matplotlib ``Figure`` (and never calls
``plt.show()``: the caller decides), labels its axes with units, and draws with seaborn's colour-blind
safe palette. Weights are drawn with a diverging colour map centred at 0 (red positive, blue negative,
white near 0) and dropped weights in a neutral grey (``DROPPED_COLOUR``) that no kept weight can have.

By default the figures are made through pyplot, so the inline backend shows them after a cell (or on
``plt.show()``). Inside ``with detached_figures():`` they are plain ``Figure`` objects on their own Agg
canvas, never registered with pyplot: nothing else in the process (another thread's
``plt.close("all")``, or matplotlib_inline's ``flush_figures`` run as a ``post_execute`` hook) can see,
draw or close them. The widgets render that way (see ``widgets.Explorer`` and docs/e2e.md).

One module per job, every name re-exported here (``from sparsevd_lab import plots; plots.X`` and
``from sparsevd_lab.plots import X`` are the public paths):

    style     palette, colour map, layer names, use_style, detached_figures, new_figure, empty_panels
    prior_kl  notebooks 01-02: the priors, the posterior, the KL approximation
    training  notebook 03: LRT moments, gradient variance, additive reparameterisation, history, pruning
    weights   notebook 04: weight images and grids, filters, log alpha histograms, pixel maps, animations
    sweeps    notebooks 05-06: accuracy against compression, the threshold choice, the regression sweep
"""
from __future__ import annotations

from .style import (DEAD_COLOUR, DROPPED_COLOUR, PALETTE, WEIGHT_CMAP, detached_figures, empty_panels, layer_names,
                    new_figure, use_style)
from .prior_kl import plot_kl, plot_posterior, plot_priors
from .training import (plot_additive_reparam, plot_gradient_variance, plot_history, plot_lrt_moments,
                       plot_pruning_curve)
from .weights import (animate_snapshots, plot_filters, plot_kl_flow, plot_layer_matrix, plot_log_alpha_hist,
                      plot_pixel_map, plot_weight_grid, weight_image)
from .sweeps import pareto_front, plot_accuracy_compression, plot_regression_sweep, plot_threshold_choice

__all__ = [
    "PALETTE",
    "WEIGHT_CMAP",
    "DROPPED_COLOUR",
    "DEAD_COLOUR",
    "layer_names",
    "use_style",
    "detached_figures",
    "empty_panels",
    "new_figure",
    "plot_priors",
    "plot_posterior",
    "plot_kl",
    "plot_lrt_moments",
    "plot_gradient_variance",
    "plot_additive_reparam",
    "plot_history",
    "plot_pruning_curve",
    "weight_image",
    "plot_weight_grid",
    "plot_filters",
    "plot_log_alpha_hist",
    "plot_pixel_map",
    "plot_layer_matrix",
    "plot_accuracy_compression",
    "pareto_front",
    "plot_threshold_choice",
    "plot_regression_sweep",
    "animate_snapshots",
    "plot_kl_flow",
]
