"""``ViTForImageClassification`` (ViT, and DeiT checkpoints converted to the ViT class).

Tokens: ``[CLS, patches]``. Head: ``classifier(layernorm(h[CLS]))``. Normalisation: mean = std =
0.5 (``google/vit-base-patch16-224``'s processor). Fixed input size (``config.image_size``).
"""
from ._adapter import Adapter


class ViTAdapter(Adapter):
    model_class = "ViTForImageClassification"
    body = "vit"
    layers_path = "vit.layers"
    final_norm = "vit.layernorm"
