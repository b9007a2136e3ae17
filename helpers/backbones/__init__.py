"""One adapter per Hugging Face model class: what the explanation methods need to know about it.

    adapter_for(model) -> Adapter     (looked up by the model's class; a clear error otherwise)

A method knows the mathematics; everything that depends on the architecture (the layers and their
attention maps, the prefix tokens, how the head reads the tokens, the patch grid and input size,
the image normalisation, the module each LRP rule applies to, the randomisation stages) comes from
the adapter (:mod:`._adapter`). Adding a backbone is one file here and one line in
:data:`ADAPTERS`.
"""
from __future__ import annotations

from ._adapter import IMAGENET_MEAN, IMAGENET_STD, LRP_ROLES, Adapter
from .deit import DeiTAdapter
from .deit_distilled import DeiTWithTeacherAdapter
from .dinov2 import Dinov2Adapter
from .dinov2_registers import Dinov2RegistersAdapter
from .vit import ViTAdapter

ADAPTERS = {adapter.model_class: adapter for adapter in (
    ViTAdapter, DeiTAdapter, DeiTWithTeacherAdapter, Dinov2Adapter, Dinov2RegistersAdapter)}


def adapter_for(model) -> Adapter:
    """The adapter of ``model``'s class (or of the nearest supported base class)."""
    for cls in type(model).__mro__:
        if cls.__name__ in ADAPTERS:
            return ADAPTERS[cls.__name__](model)
    raise TypeError(f"The explanation methods support the transformers classes "
                    f"{', '.join(ADAPTERS)}; got {type(model).__name__}. Load one with "
                    "helpers.load_model(...), or add an adapter in helpers/backbones/.")


def normalisation(model=None, processor=None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel of the pixel values: the processor's if given, else the model
    family's (its adapter's), else ViT's 0.5 / 0.5."""
    if processor is not None:
        return tuple(processor.image_mean), tuple(processor.image_std)
    if model is not None:
        adapter = adapter_for(model)
        return adapter.image_mean, adapter.image_std
    return ViTAdapter.image_mean, ViTAdapter.image_std


__all__ = ["ADAPTERS", "Adapter", "IMAGENET_MEAN", "IMAGENET_STD", "LRP_ROLES", "adapter_for",
           "normalisation"]
