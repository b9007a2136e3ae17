"""``DeiTForImageClassificationWithTeacher``: distilled DeiT, two heads averaged.

Tokens: ``[CLS, distillation, patches]``. Head (transformers' inference output):
``(cls_classifier(n[CLS]) + distillation_classifier(n[DIST])) / 2`` with ``n = layernorm(h)``.
Maps built from a token-mixing matrix read the mean of the CLS and distillation rows, the two
tokens the heads read with equal weight. Normalisation: ImageNet mean/std. Fixed input size.
"""
from ._adapter import IMAGENET_MEAN, IMAGENET_STD, Adapter


class DeiTWithTeacherAdapter(Adapter):
    model_class = "DeiTForImageClassificationWithTeacher"
    body = "deit"
    layers_path = "deit.layers"
    final_norm = "deit.layernorm"
    classifiers = ("cls_classifier", "distillation_classifier")
    head_reads = "(CLS head + distillation head) / 2"
    image_mean = IMAGENET_MEAN
    image_std = IMAGENET_STD

    @property
    def prefix_tokens(self):
        return ("CLS", "distillation")

    def head(self, hidden_state):
        model = self.model
        normed = model.deit.layernorm(hidden_state[:, :2])
        return (model.cls_classifier(normed[:, 0]) + model.distillation_classifier(normed[:, 1])) / 2

    def read_rows(self, matrix):
        return matrix[..., :2, 2:].mean(dim=-2)
