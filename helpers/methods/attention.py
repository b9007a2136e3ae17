"""Raw attention: how much the CLS token attends to each patch in one layer.

The simplest reading of a ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", ICLR;
their Fig. 6 shows attention distances). For layer ``l`` with post-softmax attention
``A_l ∈ R^{heads×N×N}`` (token 0 = CLS), the map is the CLS row without the CLS column,

    map = fuse_h A_l[h, 0, 1:]        fuse ∈ {mean, max, min} over heads,

reshaped to the patch grid. It is class-agnostic: the target is ignored. Attention says where the
CLS token *reads* in that layer, not what the prediction depends on; rollout, Chefer, GMAR and
LeGrad are attempts to fix that.

On a backbone with more prefix tokens than CLS (a distilled DeiT's distillation token, DINOv2's
registers), "the CLS row" is the row the head reads (the adapter's ``read_rows``: the mean of
the CLS and distillation rows; DINOv2 averages the CLS row with the mean patch row) and every
prefix column is dropped (:mod:`helpers.backbones`).
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import Tensor

from . import _base

HEAD_FUSIONS = ("mean", "max", "min")


def check_head_fusion(head_fusion: str) -> None:
    """Raise a clear error unless ``head_fusion`` is one of :data:`HEAD_FUSIONS`."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}.")


def fuse_heads(attention: Tensor, head_fusion: str = "mean") -> Tensor:
    """Fuse the heads axis (dim 1) of ``attention`` ``[B, heads, ...]`` by mean, max or min."""
    check_head_fusion(head_fusion)
    if head_fusion == "mean":
        return attention.mean(dim=1)
    return attention.amax(dim=1) if head_fusion == "max" else attention.amin(dim=1)


def layer_index(model, layer: int) -> int:
    """``layer`` as a non-negative index into the encoder layers (negative counts from the end)."""
    num_layers = model.config.num_hidden_layers
    if isinstance(layer, bool) or not isinstance(layer, Integral):
        raise TypeError(f"layer must be an int, got {type(layer).__name__}.")
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must lie in [{-num_layers}, {num_layers}) for this "
                         f"{num_layers}-layer model, got {layer}.")
    return int(layer) % num_layers


def cls_attention_all(model, pixel_values: Tensor) -> Tensor:
    """CLS→patch attention of every layer and head: ``[B, layers, heads, h, w]``.

    For the attention notebook (one small multiple per layer × head). Checks its inputs like
    :func:`helpers.explain`.
    """
    adapter = _base.check_model(model)
    pixel_values = _base.check_pixel_values(model, pixel_values)
    attentions = _base.forward(model, pixel_values, track_grad=False).attentions
    cls_rows = torch.stack([adapter.read_rows(a) for a in attentions], dim=1)
    return cls_rows.reshape(*cls_rows.shape[:3], *adapter.grid(pixel_values)).float()


def attention(model, pixel_values: Tensor, targets: Tensor | None = None, *, layer: int = -1,
              head_fusion: str = "mean") -> Tensor:
    """CLS→patch attention of one ``layer`` (default the last), heads fused: ``[B, h, w]``."""
    layer_index(model, layer)
    check_head_fusion(head_fusion)
    attentions = _base.forward(model, pixel_values, track_grad=False).attentions
    return attention_from(model, pixel_values, attentions, layer=layer, head_fusion=head_fusion)


def attention_from(model, pixel_values: Tensor, attentions, gradients=None, *, layer: int = -1,
                   head_fusion: str = "mean") -> Tensor:
    """:func:`attention` from the attention maps of a forward pass already made (shared with other
    methods, :func:`helpers.methods.explain_many`); ``gradients`` are not used."""
    index = layer_index(model, layer)
    check_head_fusion(head_fusion)
    cls_row = fuse_heads(_base.adapter_for(model).read_rows(attentions[index].detach()), head_fusion)
    return _base.to_patch_grid(model, cls_row, pixel_values)


attention.resolves_target = True  # class-agnostic: the target is not used
