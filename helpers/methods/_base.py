"""What every explanation method shares: input checks, the forward pass, the patch grid.

A method is one function ``name(model, pixel_values, targets, **options) -> Tensor[B, h, w]``
(see :mod:`helpers.methods`). The helpers here keep the methods short and free of side effects:

- :func:`forward` runs the model once with its attention maps (and, on request, hidden states),
  in eval mode, restoring each module's train/eval flag afterwards. With ``track_grad=True`` the
  input is a detached copy that requires grad, so the attention maps are live autograd tensors
  even when the model's parameters are frozen.
- :func:`attention_gradients` differentiates the summed target logits with respect to the attention
  maps only (``torch.autograd.grad``), so no parameter's ``.grad`` is ever touched. Summing over the
  batch is exact: image ``b``'s logit depends on image ``b``'s graph only, so one backward pass
  serves the whole batch.
"""
from __future__ import annotations

from contextlib import contextmanager
from numbers import Integral

import torch
from torch import Tensor

from ..backbones import Adapter, adapter_for


def check_model(model) -> Adapter:
    """The model's backbone adapter, after checking the model is supported and uses eager
    attention (clear errors otherwise)."""
    adapter = adapter_for(model)
    implementation = model.config._attn_implementation
    if implementation != "eager":
        raise ValueError(
            f"The model uses {implementation!r} attention, which returns no attention maps in "
            f"transformers 5 (they would be silently empty). Load it with "
            f"{type(model).__name__}.from_pretrained(..., attn_implementation=\"eager\") or "
            "helpers.load_model(...).")
    return adapter


def check_pixel_values(model, pixel_values) -> Tensor:
    """Return ``pixel_values`` as a float tensor on the model's device, after checking its shape."""
    if not isinstance(pixel_values, Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor [B, 3, H, W], got "
                        f"{type(pixel_values).__name__}; use the model's image processor "
                        "(return_tensors='pt').")
    if pixel_values.dim() != 4:
        hint = " (add a batch dimension: pixel_values[None])" if pixel_values.dim() == 3 else ""
        raise ValueError(f"pixel_values must have 4 dimensions [B, C, H, W], got shape "
                         f"{tuple(pixel_values.shape)}{hint}.")
    if not pixel_values.is_floating_point():
        raise TypeError(f"pixel_values must be floating point (the processor's normalised "
                        f"output), got {pixel_values.dtype}.")
    config = model.config
    channels, height, width = pixel_values.shape[1:]
    if channels != config.num_channels:
        raise ValueError(f"pixel_values has {channels} channels, the model expects "
                         f"{config.num_channels}: convert the images to RGB before processing.")
    problem = adapter_for(model).check_size(height, width)
    if problem:
        raise ValueError(problem)
    parameter = next(model.parameters())
    return pixel_values.to(device=parameter.device, dtype=parameter.dtype)


def as_targets(target, batch_size: int) -> Tensor:
    """``target`` (an int, or one class per image) as a LongTensor[B], with clear errors."""
    if isinstance(target, bool) or (isinstance(target, Tensor) and target.dtype == torch.bool):
        raise TypeError("target must be class indices (int), not booleans.")
    targets = torch.tensor(int(target)) if isinstance(target, Integral) else torch.as_tensor(target)
    if targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"target must hold integer class indices, got {targets.dtype}.")
    if targets.dim() == 0:
        targets = targets.expand(batch_size)
    if targets.dim() != 1 or targets.numel() != batch_size:
        raise ValueError(f"target must be None, one int, or one class per image "
                         f"({batch_size}); got shape {tuple(targets.shape)}.")
    return targets.long()


def check_targets(model, target, batch_size: int) -> Tensor | None:
    """Turn ``target`` (None, an int, or one class per image) into a LongTensor[B] (on the model's
    device) or None, checking the classes against the model's head."""
    if target is None:
        return None
    num_labels = model.config.num_labels
    targets = as_targets(target, batch_size)
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_labels):
        raise ValueError(f"target classes must lie in [0, {num_labels}) for this model's head; "
                         f"got {targets.tolist()}. Use indices of the model's own head "
                         "(model.config.id2label).")
    return targets.to(next(model.parameters()).device)


def patch_grid(model, pixel_values: Tensor | None = None) -> tuple[int, int]:
    """The (rows, columns) of the model's patch grid for ``pixel_values`` (None: the configured
    input size), e.g. (14, 14) for ViT-B/16 at 224 px."""
    return adapter_for(model).grid(pixel_values)


def to_patch_grid(model, patch_scores: Tensor, pixel_values: Tensor) -> Tensor:
    """Reshape per-patch scores ``[B, h*w]`` (prefix tokens excluded, row-major) to ``[B, h, w]``."""
    return patch_scores.reshape(patch_scores.shape[0], *patch_grid(model, pixel_values))


@contextmanager
def eval_mode(model):
    """Put every module in eval mode for the block, then restore each module's own flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def forward(model, pixel_values: Tensor, *, track_grad: bool, hidden_states: bool = False):
    """One forward pass returning logits and attention maps (and hidden states if asked).

    ``track_grad=False`` runs under ``torch.no_grad``; ``track_grad=True`` makes the attention
    maps (post-softmax ``[B, heads, N, N]`` per layer) live autograd tensors.
    """
    with eval_mode(model), torch.set_grad_enabled(track_grad):
        inputs = pixel_values.detach().requires_grad_(track_grad)
        outputs = model(pixel_values=inputs, output_attentions=True,
                        output_hidden_states=hidden_states)
    if len(outputs.attentions) != model.config.num_hidden_layers:
        raise RuntimeError("The model returned no attention maps; load it with "
                           "attn_implementation=\"eager\" (helpers.load_model does).")
    return outputs


def predicted_unless_given(targets: Tensor | None, logits: Tensor) -> Tensor:
    """``targets`` if given, else each image's arg-max class."""
    return logits.argmax(dim=-1) if targets is None else targets


def target_score(logits: Tensor, targets: Tensor) -> Tensor:
    """Sum over the batch of each image's logit for its target class (a scalar to differentiate).

    Grad mode is switched on here, so the methods work inside a caller's ``torch.no_grad()``.
    """
    with torch.enable_grad():
        return logits.gather(1, targets[:, None]).sum()


def attention_gradients(score: Tensor, attentions) -> tuple[Tensor, ...]:
    """∂score/∂A for every layer's attention map, without touching any parameter's ``.grad``."""
    return torch.autograd.grad(score, list(attentions))
