"""LeGrad (Bousselham et al. 2024, "LeGrad: An Explainability Method for Vision Transformers via
Feature Formation Sensitivity", arXiv 2404.03214).

LeGrad asks, layer by layer: if the model had to decide *now*, which attention entries would the
target score be sensitive to? The model's own head reads each layer's CLS token (through the final
LayerNorm, as it reads the last one), and the gradient of that early score with respect to that
layer's attention map is kept where positive. With ``h_l`` the output of layer ``l``, ``A_l`` its
post-softmax attention ``[heads, N, N]`` and ``t`` the target class:

    s_l = classifier(LayerNorm(h_l[CLS]))[t]
    E_l = mean_{h, i} ReLU(∂s_l / ∂A_l)[h, i, 1:]       mean over heads and all N query rows
    map = mean_{l ∈ layers} E_l                           on the patch grid

Each ``E_l`` uses only its own layer's gradient (``∂s_l/∂A_l``, not the sum over later scores),
so there is one small ``torch.autograd.grad`` per layer on the graph of a single forward pass; each
reaches back only from layer ``l``'s output to its attention map. Scores are summed over the batch:
image ``b``'s score depends on image ``b``'s graph only.

Normalisation: neither the paper nor the official code normalises the layers before aggregating;
the paper averages ``E_l`` over layers and min-max normalises the result, the code sums them and
min-max normalises. We return the plain mean over layers: min-max is an affine rescaling per image
and belongs to :mod:`helpers.viz`, like every method's colour scale.

Where the code differs, and what we do: the official code (WalBouss/LeGrad) supports OpenCLIP
(and SigLIP) models only, scores a text-image similarity, mean-pools the tokens for CLIP, and by
default uses only the last two layers (``layer_index=-2``); the paper aggregates over all layers.
We score the classifier logit from the CLS token, as a ViTForImageClassification does, and default
to all layers (``layers=slice(-2, None)`` reproduces the official default). torchcam 0.5 has a
classifier variant that scores mean-pooled tokens instead of CLS.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import Tensor

from . import _base


def layer_indices(layers, num_layers: int) -> list[int]:
    """The chosen layers as sorted non-negative indices.

    ``layers``: None (all), an int (one layer, negative counts from the end), a sequence of ints,
    or a slice (``slice(-2, None)`` = the last two layers).
    """
    everything = range(num_layers)
    if layers is None:
        return list(everything)
    if isinstance(layers, slice):
        chosen = list(everything[layers])
    else:
        chosen = list(layers) if isinstance(layers, (list, tuple, range)) else [layers]
        if any(isinstance(i, bool) or not isinstance(i, Integral) for i in chosen):
            raise TypeError(f"layers must be None, an int, a list of ints or a slice "
                            f"(slice(-2, None) = the last two), got {layers!r}.")
        if any(not -num_layers <= i < num_layers for i in chosen):
            raise ValueError(f"layers must lie in [{-num_layers}, {num_layers}) for this "
                             f"{num_layers}-layer model, got {layers!r}.")
    if not chosen:
        raise ValueError(f"layers={layers!r} selects no layer of this {num_layers}-layer model.")
    return sorted({int(i) % num_layers for i in chosen})


def layer_score(model, hidden_state: Tensor, targets: Tensor) -> Tensor:
    """``Σ_b head(h_b)[t_b]``: the model's own head (final norm included, e.g. ViT's
    ``classifier(LayerNorm(h[CLS]))``) applied to an intermediate layer's tokens."""
    with torch.enable_grad():
        logits = _base.adapter_for(model).head(hidden_state)
        return _base.target_score(logits, targets)


def legrad(model, pixel_values: Tensor, targets: Tensor | None = None, *, layers=None) -> Tensor:
    """LeGrad's patch map for ``targets`` (None: the predicted class): ``[B, h, w]``."""
    chosen = layer_indices(layers, model.config.num_hidden_layers)
    prefix = _base.adapter_for(model).num_prefix
    outputs = _base.forward(model, pixel_values, track_grad=True, hidden_states=True)
    targets = _base.predicted_unless_given(targets, outputs.logits)
    maps = []
    for index in chosen:
        score = layer_score(model, outputs.hidden_states[index + 1], targets)
        gradient, = torch.autograd.grad(score, outputs.attentions[index], retain_graph=True)
        maps.append(gradient.clamp(min=0).mean(dim=(1, 2))[:, prefix:])
    return _base.to_patch_grid(model, torch.stack(maps).mean(dim=0), pixel_values)


legrad.resolves_target = True  # None: the arg-max of its own forward pass
