"""GMAR: gradient-driven multi-head attention rollout (Jo et al. 2025, "GMAR: Gradient-Driven
Multi-Head Attention Rollout for Vision Transformer Interpretability", arXiv 2504.19414).

Rollout's mean over heads treats a head that the prediction ignores like one it relies on. GMAR
weights each head by how strongly the target logit ``y_t`` responds to that head's attention map,
then rolls out as usual. Per layer ``l`` and head ``h``, with ``A_{l,h}`` the ``[N, N]`` attention:

    G_{l,h} = ∂y_t / ∂A_{l,h}
    s_{l,h} = ‖G_{l,h}‖₁ (norm="l1")  or  ‖G_{l,h}‖₂ (norm="l2", the Frobenius norm)
    w_{l,h} = s_{l,h} / Σ_h' s_{l,h'}                       head weights sum to 1 per layer
    Ā_l     = Σ_h w_{l,h} A_{l,h}
    R       = Â_L ··· Â_1,   Â_l = rownorm(½ Ā_l + ½ I)    (as in :mod:`.rollout`)
    map     = R[0, 1:]

Weights are per image. With equal weights GMAR is mean-fusion rollout. A layer whose attention the
target does not depend on at all (every ``s_{l,h} = 0``) gets ``Ā_l = 0``, so ``Â_l = I``.

Where the authors' code (sehyeongjo/GMAR, ``gmar.py``) differs, and what we do: it hard-codes 16
heads; it takes one gradient, that of the target logit with respect to the *last block's output
hidden state* (a backward hook), splits its channels into 16 groups and uses their norms as one set
of head weights for every layer; its rollout multiplies the weighted heads without summing them
and adds a tiny identity (``5e-5 ×`` the mean) instead of ``½ I``. We follow the paper: per-layer,
per-head gradients of the attention maps, a weighted sum over heads, and the standard rollout.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import _base
from .rollout import rollout_matrix

NORMS = ("l1", "l2")


def check_norm(norm: str) -> None:
    """Raise a clear error unless ``norm`` is one of :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")


def head_weights(gradient: Tensor, norm: str = "l1") -> Tensor:
    """Per-head weights ``[B, heads]`` from attention gradients ``[B, heads, N, N]``, summing to 1.

    A layer whose gradients are all zero gets all-zero weights.
    """
    check_norm(norm)
    order = 1 if norm == "l1" else 2
    strengths = torch.linalg.vector_norm(gradient, ord=order, dim=(-2, -1))
    return strengths / strengths.sum(dim=1, keepdim=True).clamp(min=torch.finfo(strengths.dtype).tiny)


def weighted_heads(attention: Tensor, weights: Tensor) -> Tensor:
    """``Σ_h w_h A_h``: ``[B, heads, N, N]`` attention and ``[B, heads]`` weights to ``[B, N, N]``."""
    return torch.einsum("bhij,bh->bij", attention, weights)


def attention_and_head_weights(model, pixel_values: Tensor, targets: Tensor | None = None,
                               norm: str = "l1") -> tuple[list[Tensor], Tensor]:
    """Every layer's attention ``[B, heads, N, N]`` (detached) and GMAR's head weights
    ``[B, layers, heads]`` for ``targets`` (None: the predicted class)."""
    check_norm(norm)
    outputs = _base.forward(model, pixel_values, track_grad=True)
    targets = _base.predicted_unless_given(targets, outputs.logits)
    score = _base.target_score(outputs.logits, targets)
    gradients = _base.attention_gradients(score, outputs.attentions)
    weights = torch.stack([head_weights(g, norm) for g in gradients], dim=1)
    return [a.detach() for a in outputs.attentions], weights.detach()


def gmar(model, pixel_values: Tensor, targets: Tensor | None = None, *, norm: str = "l1") -> Tensor:
    """GMAR's CLS→patch rollout for ``targets`` (None: the predicted class): ``[B, h, w]``."""
    check_norm(norm)
    outputs = _base.forward(model, pixel_values, track_grad=True)
    targets = _base.predicted_unless_given(targets, outputs.logits)
    gradients = _base.attention_gradients(_base.target_score(outputs.logits, targets), outputs.attentions)
    return gmar_from(model, pixel_values, outputs.attentions, gradients, norm=norm)


def gmar_from(model, pixel_values: Tensor, attentions, gradients, *, norm: str = "l1") -> Tensor:
    """:func:`gmar` from the attention maps of a forward pass and their gradients ``∂y_t/∂A_l``
    already computed (shared with other methods, :func:`helpers.methods.explain_many`)."""
    check_norm(norm)
    fused = (weighted_heads(a.detach(), head_weights(g, norm)) for a, g in zip(attentions, gradients))
    return _base.to_patch_grid(model, _base.adapter_for(model).read_rows(rollout_matrix(fused)),
                               pixel_values)


gmar.resolves_target = True  # None: the arg-max of its own forward pass
