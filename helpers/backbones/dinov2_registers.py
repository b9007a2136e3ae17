"""``Dinov2WithRegistersForImageClassification``: DINOv2 with register tokens.

Tokens: ``[CLS, register 1 … register R, patches]`` (R = ``config.num_register_tokens``). Head and
rows as :mod:`.dinov2`, with the registers excluded from the patch mean, as transformers does
(``sequence_output[:, 1 + num_register_tokens:]``).
"""
from .dinov2 import Dinov2Adapter


class Dinov2RegistersAdapter(Dinov2Adapter):
    model_class = "Dinov2WithRegistersForImageClassification"
    body = "dinov2_with_registers"
    layers_path = "dinov2_with_registers.encoder.layer"
    final_norm = "dinov2_with_registers.layernorm"
    head_reads = "concat(CLS, mean of patches; registers excluded)"

    @property
    def prefix_tokens(self):
        registers = self.model.config.num_register_tokens
        return ("CLS", *(f"register {i + 1}" for i in range(registers)))
