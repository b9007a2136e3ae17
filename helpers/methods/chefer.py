"""Chefer's generic relevance rule (Chefer, Gur & Wolf 2021, "Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV).

Rollout treats every head alike and ignores the class. Chefer et al. weight each attention entry
by its gradient, keep the positive part, and accumulate layer by layer. With ``y_t`` the target
class's logit (before the softmax) and ``A_l`` layer ``l``'s post-softmax attention
``[heads, N, N]``:

    Ā_l = mean_h (∇A_l ⊙ A_l)⁺          ∇A_l = ∂y_t / ∂A_l,  (·)⁺ = max(·, 0)
    R   ← I;   for l = 1 … L (forward order):   R ← R + Ā_l · R
    map = R[0, 1:]                       the CLS row, CLS column dropped, on the patch grid

This is the self-attention rule of the paper (their Eq. 6 with the head average of Eq. 5); for a
pure encoder no other rule applies.

On a backbone with more prefix tokens than CLS (a distilled DeiT's distillation token, DINOv2's
registers), "the CLS row" is the row the head reads (the adapter's ``read_rows``: the mean of
the CLS and distillation rows; DINOv2 averages the CLS row with the mean patch row) and every
prefix column is dropped (:mod:`helpers.backbones`).

Where the authors' code (hila-chefer/Transformer-MM-Explainability, the ViT notebook's
``generate_relevance``) differs, and what we do: it calls ``.backward()`` on the one-hot logit,
which also fills every parameter's ``.grad``, and it explains batch element 0 only. We take
``torch.autograd.grad`` of the summed target logits with respect to the attention maps only
(parameters untouched) and explain the whole batch in one backward pass. The arithmetic is the
same.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _base


def gradient_weighted_attention(attention: Tensor, gradient: Tensor) -> Tensor:
    """``mean_h (∇A ⊙ A)⁺``: ``[B, heads, N, N]`` attention and gradient to ``[B, N, N]``."""
    return (gradient * attention).clamp(min=0).mean(dim=1)


def accumulate_relevance(weighted_layers) -> Tensor:
    """``R = I`` then ``R ← R + Ā_l R`` over ``Ā_1 … Ā_L`` (each ``[B, N, N]``, forward order)."""
    relevance = None
    for weighted in weighted_layers:
        if relevance is None:
            relevance = torch.eye(weighted.shape[-1], dtype=weighted.dtype,
                                  device=weighted.device).expand_as(weighted)
        relevance = relevance + weighted @ relevance
    return relevance


def chefer(model, pixel_values: Tensor, targets: Tensor | None = None) -> Tensor:
    """Chefer et al.'s relevance of each patch for ``targets`` (None: the predicted class)."""
    outputs = _base.forward(model, pixel_values, track_grad=True)
    targets = _base.predicted_unless_given(targets, outputs.logits)
    score = _base.target_score(outputs.logits, targets)
    gradients = _base.attention_gradients(score, outputs.attentions)
    return chefer_from(model, pixel_values, outputs.attentions, gradients)


def chefer_from(model, pixel_values: Tensor, attentions, gradients) -> Tensor:
    """:func:`chefer` from the attention maps of a forward pass and their gradients ``∂y_t/∂A_l``
    already computed (shared with other methods, :func:`helpers.methods.explain_many`)."""
    weighted = (gradient_weighted_attention(a.detach(), g) for a, g in zip(attentions, gradients))
    relevance = accumulate_relevance(weighted)
    return _base.to_patch_grid(model, _base.adapter_for(model).read_rows(relevance), pixel_values)


chefer.resolves_target = True  # None: the arg-max of its own forward pass
