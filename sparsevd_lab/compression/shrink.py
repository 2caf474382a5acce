"""Shrinking: ``compress`` walks a Sequential chain and removes what Sparse VD killed (dead units,
unread inputs, dropped weights), folding constants into the next layer's bias.
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from ..layers import Conv2dSVDO, LinearSVDO, SVDOMixin, check_threshold, svdo_layers
from .layout import (choose_storage, inference_layout, interleaved_times, mlp_variant, model_device,
                     timing_input)
from .modules import (ELEMENTWISE, CompressedSequential, Constant, IndexSelect, dense_module,
                      is_conv)

__all__ = ["compress", "STORAGES"]

STORAGES = ("auto", "dense", "sparse")

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_WEIGHT = (LinearSVDO, Conv2dSVDO, nn.Linear, nn.Conv2d)


class _Unsupported(Exception):
    pass


def _check_example(model: nn.Module, input_shape, example_input) -> None:
    """A clear error, before any work, when ``input_shape`` / ``example_input`` is not what the
    model reads (e.g. ``input_shape=(784,)`` for LeNet-5, which reads (1, 28, 28))."""
    if input_shape is not None:
        if isinstance(input_shape, int) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in input_shape):
            raise ValueError(f"input_shape must be a tuple of sizes >= 1, one example's shape "
                             f"without the batch dimension, e.g. (1, 28, 28); got {input_shape!r}")
        x, what = torch.zeros(1, *input_shape, device=model_device(model)), f"input_shape={tuple(input_shape)}"
    elif example_input is not None:
        if not torch.is_tensor(example_input) or example_input.dim() < 2:
            raise ValueError("example_input must be a batch of inputs, shape (N, ...)")
        x, what = example_input[:1], f"example_input of shape {tuple(example_input.shape)}"
    else:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"compress: {what} does not fit this model ({str(err).splitlines()[0]}); "
                         f"give one example's shape without the batch dimension, as the model "
                         f"reads it (e.g. (1, 28, 28) for LeNet-5, (784,) for LeNet-300-100)") from None
    finally:
        model.train(was_training)


def _flatten_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if type(model) not in (nn.Sequential, CompressedSequential):
        raise _Unsupported(f"the model is a {type(model).__name__}, not a plain nn.Sequential chain")
    out = []
    for name, child in model.named_children():
        if type(child) is nn.Sequential:
            out += [(f"{name}.{n}", m) for n, m in _flatten_chain(child)]
        else:
            out.append((name, child))
    return out


def _check_module(name: str, m: nn.Module) -> None:
    t = type(m)
    if t in (LinearSVDO, nn.Linear) or t in ELEMENTWISE or t in _DROPOUT:
        return
    if t in (Conv2dSVDO, nn.Conv2d):
        if m.groups != 1:
            raise _Unsupported(f"{name}: grouped convolution (groups={m.groups})")
        if t is nn.Conv2d and m.padding_mode != "zeros":
            raise _Unsupported(f"{name}: padding_mode={m.padding_mode!r}")
        if isinstance(m.padding, str):
            raise _Unsupported(f"{name}: string padding {m.padding!r}")
        return
    if t is nn.MaxPool2d:
        if m.return_indices:
            raise _Unsupported(f"{name}: MaxPool2d(return_indices=True)")
        return
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise _Unsupported(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
        return
    if t in (nn.BatchNorm1d, nn.BatchNorm2d):
        if not m.track_running_stats or m.running_mean is None:
            raise _Unsupported(f"{name}: batch norm without running statistics")
        return
    raise _Unsupported(f"{name}: module type {t.__name__} is not one compress can shrink")


def _weight_and_bias(m: nn.Module, threshold: float | None) -> tuple[Tensor, Tensor | None]:
    with torch.no_grad():
        if isinstance(m, SVDOMixin):
            w = m.masked_weight(threshold)  # eval mode: theta * (log_alpha < threshold)
        else:
            w = m.weight.detach().clone()
        b = None if m.bias is None else m.bias.detach().clone()
    return w, b


def _apply_segment_to_const(ops, const: Tensor, spatial: dict) -> Tensor:
    """Push per-unit constants (shape (1, C) or (1, C, 1, 1)) through the ops of a segment."""
    for name, m in ops:
        if isinstance(m, _DROPOUT) or isinstance(m, nn.MaxPool2d):
            continue  # identity in eval mode / the max of a constant map is that constant
        if isinstance(m, nn.Flatten):
            hw = spatial.get(name, 1)
            const = const.reshape(1, -1).repeat_interleave(hw, dim=1)
            continue
        const = m(const)
    return const


def _fallback(model: nn.Module, threshold: float | None, reason: str) -> nn.Module:
    warnings.warn(
        f"compress cannot shrink this architecture structurally ({reason}); returning the same "
        f"architecture with masked dense layers (correct outputs, no speed-up). Structured "
        f"compression needs an nn.Sequential chain of Linear/Conv2d layers, elementwise "
        f"activations, MaxPool2d, Flatten, Dropout and BatchNorm.",
        stacklevel=3,
    )
    model = copy.deepcopy(model)

    def _plain(m: nn.Module) -> nn.Module:
        w, b = _weight_and_bias(m, threshold)
        if isinstance(m, LinearSVDO):
            new = nn.Linear(m.in_features, m.out_features, bias=b is not None,
                            device=w.device, dtype=w.dtype)
        else:
            new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                            m.dilation, m.groups, bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            new.weight.copy_(w)
            if b is not None:
                new.bias.copy_(b)
        return new

    def _replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, SVDOMixin):
                setattr(parent, name, _plain(child))
            else:
                _replace(child)

    if isinstance(model, SVDOMixin):
        model = _plain(model)
    else:
        _replace(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def compress(
    model: nn.Module,
    threshold: float | None = None,
    *,
    storage: str = "auto",
    input_shape: tuple[int, ...] | None = None,
    example_input: Tensor | None = None,
    timing_batch: int = 256,
    timing_repeats: int = 7,
) -> nn.Module:
    """A plain ``torch.nn`` model whose outputs equal ``model``'s eval-mode outputs.

    ``threshold`` overrides the layers' own (weights with log_alpha >= threshold are dropped).
    ``storage``: "auto" times dense against sparse (CSR) for each weight layer on a representative
    batch (``example_input``, else random inputs of ``input_shape`` without the batch dimension,
    ``timing_batch`` rows; a Linear-first model needs neither) and keeps the faster; "dense" or
    "sparse" force one. Without a shape to time on, "auto" keeps dense. The input model is untouched.
    A timed choice depends on the machine and its load: ``info["storage_rule"]`` and
    ``info["timing"]`` (saved in the file) say what was measured, and the seconds per layer are in
    ``info["layers"]``; pass "dense" or "sparse" for a choice that does not depend on the machine.

    Raises ValueError for a model with no Sparse VD layer, a non-finite threshold or an unknown
    ``storage``. Architectures it cannot shrink give masked dense layers and a warning.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"compress expects an nn.Module, got {type(model).__name__}")
    if threshold is not None:
        threshold = check_threshold(threshold)
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}; got {storage!r}")
    if not svdo_layers(model):
        raise ValueError(
            "compress needs a model with Sparse VD layers (LinearSVDO / Conv2dSVDO): a dense model "
            "has nothing to remove. Train one with svdo=True (or sparsevd_lab.from_dense), or use "
            "sparsevd_lab.pruning.magnitude_prune for a dense baseline."
        )
    _check_example(model, input_shape, example_input)
    try:
        chain = _flatten_chain(model)
        for name, m in chain:
            _check_module(name, m)
        compact = _shrink(chain, threshold)
    except _Unsupported as err:
        return _fallback(model, threshold, str(err))
    compact.eval()
    x = timing_input(compact, input_shape, example_input, timing_batch) if storage == "auto" else None
    if storage != "dense":
        choose_storage(compact, storage, x, timing_repeats)
    if storage == "auto":
        # a tail of sparse linear layers may run faster in one pass of the compiled kernel: time it
        variant = None if x is None else mlp_variant(compact)
        if variant is not None:
            t_layers, t_mlp = interleaved_times([compact, variant], x, timing_repeats)
            for c in (compact, variant):
                c.info["seconds_layers"], c.info["seconds_sparse_mlp"] = t_layers, t_mlp
            if t_mlp < t_layers:
                compact = variant
    if storage == "auto":
        # the choice depends on this machine and its load at this moment: the file says what was
        # measured (seconds per layer in info["layers"], the settings here), so a reader can tell
        compact.info["storage_rule"] = (
            "timed" if x is not None else "dense: no input shape to time on")
        if x is not None:
            compact.info["timing"] = {"device": str(x.device), "batch": int(x.shape[0]),
                                      "repeats": int(timing_repeats),
                                      "cpu_threads": torch.get_num_threads(),
                                      "statistic": "median of interleaved runs"}
    else:
        compact.info["storage_rule"] = f"forced: storage={storage!r}"
    _keep_input_check(model, compact)
    inference_layout(compact, example_input[:1] if example_input is not None else
                     (torch.zeros(1, *input_shape, device=model_device(compact)) if input_shape else None))
    return compact


def _keep_input_check(model: nn.Module, compact: nn.Module) -> None:
    """The trained network's input check (``models.InputCheck``) goes with it, so a wrong input gets
    the same error from the compressed model as from the trained one, before any kernel reads it."""
    from ..models import InputCheck

    for hook in model._forward_pre_hooks.values():
        if isinstance(hook, InputCheck):
            compact.register_forward_pre_hook(hook)


def _shrink(chain, threshold) -> CompressedSequential:
    """The structural shrink, one step per function: split the chain at its weight layers, mask
    the weights, map Flatten sizes, fold dead units into the next bias, find the units a kept
    weight reads, and build the compact chain (or a constant, when every path is dropped)."""
    layers, segments = _split_at_weights(chain)
    ws, bs = map(list, zip(*(_weight_and_bias(m, threshold) for _, m in layers)))
    spatial = _flatten_sizes(layers, segments)
    _fold_dead_units(layers, segments, ws, bs, spatial)
    needed_in, needed_out = _read_units(ws)
    if any(not bool(n.any()) for n in needed_out[:-1]) or not bool(needed_in[0].any()):
        return _constant_model(layers, segments, ws, bs, spatial)
    return _compact_chain(layers, segments, ws, bs, spatial, needed_in, needed_out)


def _split_at_weights(chain):
    """(layers, segments): the weight layers, and segments[k] = the ops before weight layer k
    (segments[-1]: the ops after the last one)."""
    weight_pos = [i for i, (_, m) in enumerate(chain) if isinstance(m, _WEIGHT)]
    if not weight_pos:
        raise _Unsupported("no weight layer")
    bounds = [-1] + weight_pos + [len(chain)]
    segments = [chain[bounds[k] + 1: bounds[k + 1]] for k in range(len(weight_pos) + 1)]
    return [chain[i] for i in weight_pos], segments


def _flatten_sizes(layers, segments) -> dict[str, int]:
    """Shapes between layers: a Flatten after a conv maps channel c to features c*hw .. c*hw+hw-1;
    returns {flatten name: hw}."""
    spatial: dict[str, int] = {}
    n_layers = len(layers)
    for k in range(n_layers + 1):
        prev = layers[k - 1][1] if k > 0 else None
        nxt = layers[k][1] if k < n_layers else None
        flat_names = [n for n, m in segments[k] if isinstance(m, nn.Flatten)]
        if len(flat_names) > 1:
            raise _Unsupported("more than one Flatten between two weight layers")
        if prev is not None and nxt is not None:
            if is_conv(prev) and not is_conv(nxt) and not flat_names:
                raise _Unsupported(f"{layers[k][0]}: a Linear reads a conv output without Flatten")
            if is_conv(nxt) and not is_conv(prev):
                raise _Unsupported(f"{layers[k][0]}: a conv after a Linear")
            if flat_names:
                c = prev.out_channels if is_conv(prev) else prev.out_features
                if is_conv(nxt) or nxt.in_features % c:
                    raise _Unsupported(f"{flat_names[0]}: cannot map {c} channels onto the "
                                       f"next layer's inputs")
                spatial[flat_names[0]] = nxt.in_features // c
    return spatial


def _fold_dead_units(layers, segments, ws, bs, spatial) -> None:
    """Forward pass: a unit with no kept incoming weight outputs a constant; push it through the ops
    after it and fold it into the next layer's bias (``ws`` and ``bs`` are updated in place)."""
    dtype = ws[0].dtype
    n_layers = len(layers)
    const_in_mask = const_in_val = None  # per input unit of layer k: constant? its value
    for k in range(n_layers):
        w, out = ws[k], ws[k].shape[0]
        if const_in_mask is not None and bool(const_in_mask.any()):
            foldable = const_in_mask.clone()
            if is_conv(layers[k][1]) and tuple(layers[k][1].padding) != (0, 0):
                foldable &= const_in_val == 0  # zero padding breaks a nonzero constant map
            if bool(foldable.any()):
                cols = w[:, foldable].double()
                vals = const_in_val[foldable].double()
                colsum = cols.reshape(out, cols.shape[1], -1).sum(-1)  # sum over the kernel
                b = torch.zeros(out, dtype=torch.float64) if bs[k] is None else bs[k].double()
                bs[k] = (b + colsum @ vals).to(dtype)
                w = w.clone()
                w[:, foldable] = 0
                ws[k] = w
        if k + 1 == n_layers:
            break
        live = w.reshape(out, -1).ne(0).any(1)
        const = torch.zeros(out, dtype=dtype) if bs[k] is None else bs[k].clone()
        shape = (1, out, 1, 1) if is_conv(layers[k][1]) else (1, out)
        with torch.no_grad():
            cval = _apply_segment_to_const(segments[k + 1], const.reshape(shape), spatial)
        hw = cval.numel() // out
        const_in_mask = (~live).repeat_interleave(hw)
        cval = cval.reshape(-1)
        const_in_val = torch.where(const_in_mask, cval, torch.zeros_like(cval))


def _read_units(ws) -> tuple[list[Tensor], list[Tensor]]:
    """Backward pass: (needed_in, needed_out) per layer, the input and output units that a kept
    weight downstream reads."""
    n_layers = len(ws)
    needed_out: list = [None] * n_layers
    needed_in: list = [None] * n_layers
    needed_out[-1] = torch.ones(ws[-1].shape[0], dtype=torch.bool)
    for k in range(n_layers - 1, -1, -1):
        w = ws[k][needed_out[k]]
        nin = w.shape[1]
        needed_in[k] = w.reshape(w.shape[0], nin, -1).ne(0).any(-1).any(0) if w.shape[0] else \
            torch.zeros(nin, dtype=torch.bool)
        if k > 0:
            units = ws[k - 1].shape[0]
            needed_out[k - 1] = needed_in[k].reshape(units, nin // units).any(1)
    return needed_in, needed_out


def _constant_model(layers, segments, ws, bs, spatial) -> CompressedSequential:
    """A layer with no kept unit: nothing reads the input, the output is a constant."""
    if is_conv(layers[-1][1]):
        raise _Unsupported("every path is dropped in a net that ends with a conv")
    b = bs[-1] if bs[-1] is not None else torch.zeros(ws[-1].shape[0], dtype=ws[0].dtype)
    with torch.no_grad():
        value = _apply_segment_to_const(segments[-1], b.reshape(1, -1), spatial)
    info = {"structured": True, "constant": True, "layers": [
        {"layer": n, "type": "conv2d" if is_conv(m) else "linear",
         "shape_before": list(w.shape), "shape_after": [0] * w.dim(), "kept_weights": 0,
         "storage": "none"} for (n, m), w in zip(layers, ws)]}
    return CompressedSequential(Constant(value.reshape(-1)), info=info)


def _segment_modules(ops, k: int, n_layers: int, kept_units, needed_in, spatial) -> list[nn.Module]:
    """The ops between two weight layers, acting on the kept units of layer k-1 (on the input for
    k == 0): dropout removed, batch norm sliced, an IndexSelect after Flatten for unread features."""
    modules: list[nn.Module] = []
    for n, m in ops:
        if isinstance(m, _DROPOUT):
            continue
        if isinstance(m, nn.Flatten):
            modules.append(nn.Flatten())
            if 0 < k < n_layers:
                hw = spatial[n]
                sel = needed_in[k].reshape(-1, hw)[kept_units]
                # the kept units become features: unit u -> u*hw .. u*hw+hw-1 (for a batch norm after)
                kept_units = (kept_units.repeat_interleave(hw) * hw
                              + torch.arange(hw).repeat(len(kept_units)))
                if not bool(sel.all()):
                    feat_index = sel.reshape(-1).nonzero().flatten()
                    modules.append(IndexSelect(feat_index, sel.numel()))
                    kept_units = kept_units[feat_index]
            continue
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            modules.append(_slice_bn(m, kept_units))
        elif isinstance(m, nn.MaxPool2d):
            modules.append(nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                        ceil_mode=m.ceil_mode))
        else:
            modules.append(copy.deepcopy(m))
    return modules


def _compact_chain(layers, segments, ws, bs, spatial, needed_in, needed_out) -> CompressedSequential:
    """The compact chain: each weight layer keeps the rows it must output and the columns it reads."""
    n_layers = len(layers)
    modules: list[nn.Module] = []
    info_layers = []
    for k in range(n_layers + 1):
        kept_units = None if k == 0 else needed_out[k - 1].nonzero().flatten()
        modules += _segment_modules(segments[k], k, n_layers, kept_units, needed_in, spatial)
        if k == n_layers:
            break
        name, layer = layers[k]
        in_keep = needed_in[k].nonzero().flatten()
        if k == 0 and len(in_keep) < ws[0].shape[1]:
            modules.append(IndexSelect(in_keep, ws[0].shape[1]))
        out_keep = needed_out[k].nonzero().flatten()
        w = ws[k][out_keep][:, in_keep].contiguous()
        b = None if bs[k] is None else bs[k][out_keep].contiguous()
        new = dense_module(layer, w, b)
        new.source_name = name
        modules.append(new)
        info_layers.append({
            "layer": name, "type": "conv2d" if is_conv(layer) else "linear",
            "shape_before": list(ws[k].shape), "shape_after": list(w.shape),
            "kept_weights": int(w.ne(0).sum()), "storage": "dense",
        })
    compact = CompressedSequential(*modules, info={"layers": info_layers, "structured": True})
    for p in compact.parameters():
        p.requires_grad_(False)
    return compact


def _slice_bn(m: nn.Module, kept: Tensor | None) -> nn.Module:
    new = copy.deepcopy(m)
    if kept is None or len(kept) == m.num_features:
        return new.eval()
    new = type(m)(len(kept), eps=m.eps, momentum=m.momentum, affine=m.affine,
                  track_running_stats=True, device=m.running_mean.device,
                  dtype=m.running_mean.dtype)
    with torch.no_grad():
        new.running_mean.copy_(m.running_mean[kept])
        new.running_var.copy_(m.running_var[kept])
        if m.affine:
            new.weight.copy_(m.weight[kept])
            new.bias.copy_(m.bias[kept])
    return new.eval()
