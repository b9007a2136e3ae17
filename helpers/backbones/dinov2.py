"""``Dinov2ForImageClassification``: DINOv2 with a linear head.

Tokens: ``[CLS, patches]``. Head: ``classifier(concat(n[CLS], mean_patches n))`` with
``n = layernorm(h)``; maps built from a token-mixing matrix read the same two halves with equal
weight: ``(row[CLS] + mean of the patch rows) / 2``. Layers: ``norm1``, attention, ``layer_scale1``,
``norm2``, MLP (``fc1``/GELU/``fc2``, or SwiGLU ``down(silu(gate x) * up x)``), ``layer_scale2``.
Position embeddings are interpolated to any input size that is a multiple of the patch size
(``config.image_size`` is 518 on the hub while the processor crops 224): the grid comes from the
pixel values. Normalisation: ImageNet mean/std (``facebook/dinov2-*`` processors).
"""
import torch

from ._adapter import IMAGENET_MEAN, IMAGENET_STD, Adapter


class Dinov2Adapter(Adapter):
    model_class = "Dinov2ForImageClassification"
    body = "dinov2"
    layers_path = "dinov2.encoder.layer"
    final_norm = "dinov2.layernorm"
    image_mean = IMAGENET_MEAN
    image_std = IMAGENET_STD
    interpolates_positions = True
    head_reads = "concat(CLS, mean of patches)"

    def head(self, hidden_state):
        normed = self.model.get_submodule(self.final_norm)(hidden_state)
        pooled = torch.cat([normed[:, 0], normed[:, self.num_prefix:].mean(dim=1)], dim=1)
        return self.model.classifier(pooled)

    def read_rows(self, matrix):
        p = self.num_prefix
        return (matrix[..., 0, p:] + matrix[..., p:, p:].mean(dim=-2)) / 2

    def mlp_modules(self, layer):
        if hasattr(layer.mlp, "gate_proj"):  # SwiGLU (config.use_swiglu_ffn)
            mlp = layer.mlp
            return [(mlp, "gated_product"), (mlp.gate_proj, "mlp_linear"),
                    (mlp.act_fn, "activation"), (mlp.up_proj, "mlp_linear"),
                    (mlp.down_proj, "mlp_linear")]
        return super().mlp_modules(layer)

    def gated_forward(self, module, multiply):
        return lambda x: module.down_proj(multiply(module.act_fn(module.gate_proj(x)),
                                                  module.up_proj(x)))
