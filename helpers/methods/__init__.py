"""One verb for every explanation method: :func:`explain`, and the registry :data:`METHODS`.

    explain(model, pixel_values, method, target=None, resolution="patch", **options)
        -> Tensor [B, h, w]    (h = w = image_size / patch_size; [B, H, W] for resolution="pixel")

One map per image on the patch grid, prefix tokens (CLS, distillation, registers) excluded,
row-major; larger = more evidence for the target. Each method is one file exposing ``name(model, pixel_values, targets, **options)``:

============  ======================================================  =========================
method        idea                                                    options
============  ======================================================  =========================
attention     CLS→patch attention of one layer                        layer, head_fusion
rollout       attention × skip connections, multiplied over layers    head_fusion, discard_ratio
chefer        gradient-weighted attention, accumulated over layers    —
gmar          rollout with heads weighted by their gradient norms     norm
legrad        per-layer sensitivity of the head's score to attention  layers
attnlrp       layer-wise relevance propagation for attention (lxt)    preset, conv_gamma,
                                                                      lin_gamma, variant
============  ======================================================  =========================

A method function gets ``targets`` as a validated LongTensor[B] on the model's device. Methods
marked ``resolves_target = True`` also accept ``None``: class-agnostic ones (attention, rollout)
ignore the target, gradient ones take the arg-max of their own forward pass, which saves
:func:`explain` a second forward. Methods marked ``native_pixel = True`` (attnlrp) compute
``resolution="pixel"`` themselves; the others are upsampled bilinearly.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor

from . import _base
from .attention import attention, attention_from, cls_attention_all
from .chefer import chefer, chefer_from
from .gmar import gmar, gmar_from
from .legrad import legrad
from .rollout import rollout, rollout_from

RESOLUTIONS = ("patch", "pixel")


def _attnlrp(model, pixel_values, targets, **options):
    """AttnLRP (:mod:`helpers.methods.attnlrp`), imported on first use (it loads lxt and zennit)."""
    from .attnlrp import attnlrp as method

    return method(model, pixel_values, targets, **options)


_attnlrp.native_pixel = True


def _available_methods() -> dict:
    from importlib.util import find_spec

    methods = {"attention": attention, "rollout": rollout, "chefer": chefer, "gmar": gmar,
               "legrad": legrad}
    if find_spec(f"{__name__}.attnlrp") is not None:
        methods["attnlrp"] = _attnlrp
    return methods


METHODS = _available_methods()


def _method_and_options(method, options: dict):
    """The registered function for ``method``, after checking ``options`` against its keywords."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(METHODS)}.")
    function = METHODS[method]
    implementation = function
    if function is _attnlrp:
        from .attnlrp import attnlrp as implementation
    accepted = [p.name for p in inspect.signature(implementation).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "resolution"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"{method} does not take option(s) {unknown}; its options are "
                        f"{accepted or 'none'}.")
    return function


def _predicted_classes(model, pixel_values: Tensor) -> Tensor:
    """Each image's arg-max class from a no-grad forward pass."""
    with _base.eval_mode(model), torch.no_grad():
        return model(pixel_values=pixel_values).logits.argmax(dim=-1)


def _to_pixels(maps: Tensor, size) -> Tensor:
    """Bilinear upsampling of ``[B, h, w]`` patch maps to ``[B, H, W]`` (``size = (H, W)``)."""
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]


def explain(model, pixel_values: Tensor, method: str, target=None, resolution: str = "patch",
            **options) -> Tensor:
    """Explain ``model``'s decision for ``target`` on each image with ``method``.

    - ``model``: a classifier of a class in :data:`helpers.backbones.ADAPTERS` (ViT, DeiT,
      distilled DeiT, DINOv2 with or without registers) with eager attention
      (``helpers.load_model``).
    - ``pixel_values``: ``[B, 3, H, W]`` from the model's image processor (moved to the model's
      device).
    - ``method``: a name in :data:`METHODS`; ``options`` are that method's keywords.
    - ``target``: None (each image's predicted class), an int (for every image), or one class per
      image (a sequence or tensor of length B); indices of the model's own head.
    - ``resolution``: ``"patch"`` → ``[B, h, w]``; ``"pixel"`` → ``[B, H, W]``.

    Returns a detached float tensor on the model's device. The model is left as it was: outputs,
    parameter gradients, hooks, config and train/eval mode. Explanations are computed in the
    model's own precision (float32): a caller's autocast (bfloat16 on a GPU) is switched off
    inside, so a map does not depend on where it was asked for, and LRP still conserves relevance.
    """
    _base.check_model(model)
    function = _method_and_options(method, options)
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}.")
    pixel_values = _base.check_pixel_values(model, pixel_values)
    targets = _base.check_targets(model, target, pixel_values.shape[0])
    if targets is None and not getattr(function, "resolves_target", False):
        targets = _predicted_classes(model, pixel_values)
    native_pixel = getattr(function, "native_pixel", False)
    pixel_option = {"resolution": resolution} if native_pixel else {}
    with _base.eval_mode(model), torch.autocast(pixel_values.device.type, enabled=False):
        maps = function(model, pixel_values, targets, **pixel_option, **options)
    if resolution == "pixel" and not native_pixel:
        maps = _to_pixels(maps, pixel_values.shape[-2:])
    return maps.detach().float()


# Methods that read nothing but one forward pass's attention maps (and, if True, their gradients
# ∂y_t/∂A_l): explain_many computes that pass once for all of them.
FROM_ATTENTION = {"attention": (attention_from, False), "rollout": (rollout_from, False),
                  "chefer": (chefer_from, True), "gmar": (gmar_from, True)}


def explain_many(model, pixel_values: Tensor, variants, target=None) -> list[Tensor]:
    """``[explain(model, pixel_values, method, target, **options) for method, options in variants]``
    (patch maps), with one forward pass, and at most one backward pass to the attention maps, shared
    by every variant of :data:`FROM_ATTENTION` (attention, rollout, Chefer, GMAR: each reads only the
    attention maps and their gradients); AttnLRP variants that differ only in ``conv_gamma`` share
    their forward and backward pass down to the patch embedding
    (:func:`helpers.methods.attnlrp.attnlrp_many`); the other methods run on their own. The same
    maps as separate calls, for the cost of the dearest of the shared methods."""
    variants = list(variants)
    shared = [n for n, (method, options) in enumerate(variants) if method in FROM_ATTENTION]
    lrp = [n for n, (method, options) in enumerate(variants) if method == "attnlrp" and "attnlrp" in METHODS]
    if len(lrp) < 2:
        lrp = []
    maps = [None if n in shared or n in lrp else explain(model, pixel_values, method, target, **options)
            for n, (method, options) in enumerate(variants)]
    if not shared and not lrp:
        return maps
    _base.check_model(model)
    for n in shared + lrp:
        _method_and_options(*variants[n])  # unknown options fail as in explain
    pixel_values = _base.check_pixel_values(model, pixel_values)
    targets = _base.check_targets(model, target, pixel_values.shape[0])
    if lrp:
        from .attnlrp import attnlrp_many

        lrp_targets = _predicted_classes(model, pixel_values) if targets is None else targets
        with _base.eval_mode(model), torch.autocast(pixel_values.device.type, enabled=False):
            lrp_maps = attnlrp_many(model, pixel_values, lrp_targets, [variants[n][1] for n in lrp])
        for n, m in zip(lrp, lrp_maps):
            maps[n] = m.detach().float()
    if not shared:
        return maps
    with_gradients = any(FROM_ATTENTION[variants[n][0]][1] for n in shared)
    with _base.eval_mode(model), torch.autocast(pixel_values.device.type, enabled=False):
        outputs = _base.forward(model, pixel_values, track_grad=with_gradients)
        gradients = None
        if with_gradients:
            targets = _base.predicted_unless_given(targets, outputs.logits)
            gradients = _base.attention_gradients(_base.target_score(outputs.logits, targets),
                                                  outputs.attentions)
        for n in shared:
            method, options = variants[n]
            function = FROM_ATTENTION[method][0]
            maps[n] = function(model, pixel_values, outputs.attentions, gradients, **options).detach().float()
    return maps


__all__ = ["FROM_ATTENTION", "METHODS", "RESOLUTIONS", "explain", "explain_many", "cls_attention_all"]
