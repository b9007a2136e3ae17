"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", ACL).

Attention alone ignores the residual connections and the mixing across layers. Rollout models
each layer as "half attention, half skip connection" and multiplies the layers together. For each
layer ``l`` with attention ``A_l`` ``[heads, N, N]`` (token 0 = CLS):

    Ā_l = fuse_h A_l                     fuse ∈ {mean, max, min} over heads
    Ā_l ← Ā_l with its lowest ``discard_ratio`` fraction of entries set to 0 (optional)
    Â_l = rownorm(½ Ā_l + ½ I)           every row sums to 1
    R   = Â_L ··· Â_2 Â_1
    map = R[0, 1:]                       the CLS row, CLS column dropped, on the patch grid

Class-agnostic: the target is ignored.

On a backbone with more prefix tokens than CLS (a distilled DeiT's distillation token, DINOv2's
registers), "the CLS row" is the row the head reads (the adapter's ``read_rows``: the mean of
the CLS and distillation rows; DINOv2 averages the CLS row with the mean patch row) and every
prefix column is dropped (:mod:`helpers.backbones`).

Where the reference code (jacobgil/vit-explain, ``vit_rollout.py``) differs, and what we do:

- Normalisation: vit-explain computes ``a / a.sum(dim=-1)``, which broadcasts the row sums along
  the *columns* (entry ``(i, j)`` is divided by row ``j``'s sum). With mean fusion and no discard
  the rows already sum to 1 and nothing changes; with max/min fusion or discarding it is not a row
  normalisation. We divide each row by its own sum, as the paper intends.
- Discarding: like vit-explain, the fraction is counted over all ``N·N`` entries of the fused
  matrix (not per row), per image and per layer: the ``floor(discard_ratio·N·N)`` smallest entries
  are zeroed. vit-explain then spares CLS→CLS by dropping index 0 from the chosen set (zeroing one
  entry fewer when it was chosen); we exclude CLS→CLS from the candidates, so exactly that many
  entries are zeroed (more only for exact ties) and CLS→CLS never is.
- Batches: vit-explain processes batch element 0 only; every function here is batched.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _base
from .attention import check_head_fusion, fuse_heads


def check_discard_ratio(discard_ratio: float) -> None:
    """Raise a clear error unless ``0 <= discard_ratio < 1``."""
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must lie in [0, 1), got {discard_ratio}.")


def discard_lowest(fused: Tensor, discard_ratio: float) -> Tensor:
    """Zero the ``floor(discard_ratio·N·N)`` smallest entries of each ``[N, N]`` in ``[B, N, N]``.

    The CLS→CLS entry ``[0, 0]`` is never zeroed. Entries tied with the last one zeroed are zeroed
    too (a selection, ``kthvalue``, is several times faster than ``topk`` here). Returns a new
    tensor.
    """
    check_discard_ratio(discard_ratio)
    flat = fused.flatten(1)
    count = int(discard_ratio * flat.shape[1])
    if count == 0:
        return fused.clone()
    candidates = flat.clone()
    candidates[:, 0] = torch.inf  # CLS→CLS is never among the lowest
    threshold = candidates.kthvalue(count, dim=1, keepdim=True).values
    return flat.masked_fill(candidates <= threshold, 0.0).view_as(fused)


def with_residual(fused: Tensor) -> Tensor:
    """``rownorm(½ Ā + ½ I)`` for ``Ā`` ``[B, N, N]``: attention mixed with the skip connection."""
    identity = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
    mixed = 0.5 * fused + 0.5 * identity
    return mixed / mixed.sum(dim=-1, keepdim=True)


def rollout_matrix(fused_layers) -> Tensor:
    """``R = Â_L ··· Â_1`` for fused attentions ``Ā_1 … Ā_L`` (each ``[B, N, N]``, forward order)."""
    relevance = None
    for fused in fused_layers:
        step = with_residual(fused)
        relevance = step if relevance is None else step @ relevance
    return relevance


def rollout(model, pixel_values: Tensor, targets: Tensor | None = None, *,
            head_fusion: str = "mean", discard_ratio: float = 0.0) -> Tensor:
    """Attention rollout's CLS→patch row: ``[B, h, w]`` (see the module docstring)."""
    check_head_fusion(head_fusion)
    check_discard_ratio(discard_ratio)
    attentions = _base.forward(model, pixel_values, track_grad=False).attentions
    return rollout_from(model, pixel_values, attentions, head_fusion=head_fusion,
                        discard_ratio=discard_ratio)


def rollout_from(model, pixel_values: Tensor, attentions, gradients=None, *, head_fusion: str = "mean",
                 discard_ratio: float = 0.0) -> Tensor:
    """:func:`rollout` from the attention maps of a forward pass already made (shared with other
    methods, :func:`helpers.methods.explain_many`); ``gradients`` are not used."""
    check_head_fusion(head_fusion)
    check_discard_ratio(discard_ratio)
    fused = (discard_lowest(fuse_heads(a.detach(), head_fusion), discard_ratio) for a in attentions)
    return _base.to_patch_grid(model, _base.adapter_for(model).read_rows(rollout_matrix(fused)),
                               pixel_values)


rollout.resolves_target = True  # class-agnostic: the target is not used
