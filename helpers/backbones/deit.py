"""``DeiTForImageClassification``: DeiT without its distillation head.

Tokens: ``[CLS, distillation, patches]`` (the embeddings always carry the distillation token).
Head: ``classifier(layernorm(h)[CLS])``; the distillation token is read by no head here, but it is
not a patch. Normalisation: ImageNet mean/std (``facebook/deit-*`` processors). Fixed input size.
"""
from ._adapter import IMAGENET_MEAN, IMAGENET_STD, Adapter


class DeiTAdapter(Adapter):
    model_class = "DeiTForImageClassification"
    body = "deit"
    layers_path = "deit.layers"
    final_norm = "deit.layernorm"
    image_mean = IMAGENET_MEAN
    image_std = IMAGENET_STD

    @property
    def prefix_tokens(self):
        return ("CLS", "distillation")
