"""The adapter interface: what the explanation methods need to know about one model class.

An :class:`Adapter` wraps one model and answers, in the model's own terms:

- ``layers``: the transformer layers (each one's eager attention map is ``outputs.attentions[i]``);
- ``prefix_tokens``: the tokens before the patches (CLS, a distillation token, registers);
- ``head(h)``: the logits the model's own head computes from a layer's output tokens ``h``
  ``[B, N, D]`` (before the final norm), for LeGrad's per-layer scores;
- ``read_rows(matrix)``: the patch columns of the token rows the head reads, for maps built from a
  token-mixing matrix ``[..., N, N]`` (attention, rollout, Chefer, GMAR);
- ``grid(pixel_values)``, ``check_size(height, width)``: the patch grid and the accepted input size;
- ``image_mean``, ``image_std``: the normalisation of the family's image processors;
- ``lrp_modules()``: each module whose backward an LRP rule changes, with its role;
- ``randomization_stages()``: the cascading-randomisation stages, top first.

A concrete adapter sets the module paths (``body``, ``layers_path``, ``final_norm``,
``classifiers``) and overrides what differs; one file per Hugging Face model class.
"""
from __future__ import annotations

from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Roles of modules in the LRP rule plan (helpers.methods.attnlrp gives each role its rule).
LRP_ROLES = ("patch_embedding", "query", "key", "value", "attention_output", "mlp_linear",
             "activation", "gated_product", "layer_norm", "classifier")


class Adapter:
    """The methods' view of one model (see the module docstring). Subclasses set the paths."""

    model_class: str = ""            # the Hugging Face class name this adapter serves
    body: str = ""                   # the backbone attribute ("vit", "deit", "dinov2", ...)
    layers_path: str = ""            # the ModuleList of transformer layers
    final_norm: str = ""             # the LayerNorm after the last layer
    classifiers: tuple[str, ...] = ("classifier",)
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolates_positions = False   # True: any multiple of the patch size is accepted
    head_reads = "CLS"               # what the head reads, in words (for tables)

    def __init__(self, model):
        self.model = model

    # ------------------------------------------------------------------ tokens
    @property
    def prefix_tokens(self) -> tuple[str, ...]:
        """Names of the tokens before the patch tokens, in order."""
        return ("CLS",)

    @property
    def num_prefix(self) -> int:
        return len(self.prefix_tokens)

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.get_submodule(self.layers_path)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def head(self, hidden_state: Tensor) -> Tensor:
        """Logits ``[B, K]`` the head computes from tokens ``[B, N, D]`` (before the final norm).

        Default: ``classifier(final_norm(h[:, 0]))``, the CLS token.
        """
        norm = self.model.get_submodule(self.final_norm)
        return self.model.get_submodule(self.classifiers[0])(norm(hidden_state[:, 0]))

    def read_rows(self, matrix: Tensor) -> Tensor:
        """``[..., N, N]`` → ``[..., patches]``: the patch columns of the row(s) the head reads.

        Default: the CLS row, prefix columns dropped.
        """
        return matrix[..., 0, self.num_prefix:]

    # ------------------------------------------------------------------ geometry
    @property
    def patch_size(self) -> int:
        return int(self.model.config.patch_size)

    def check_size(self, height: int, width: int) -> str | None:
        """None if ``height x width`` pixels are accepted, else what is wrong and what to do."""
        if self.interpolates_positions:
            p = self.patch_size
            if height % p or width % p:
                return (f"pixel_values are {height}x{width}, not a multiple of the model's patch "
                        f"size {p}: resize/crop with the model's image processor.")
            return None
        size = self.model.config.image_size
        if (height, width) != (size, size):
            return (f"pixel_values are {height}x{width}, the model expects {size}x{size}: resize "
                    "with the model's image processor.")
        return None

    def grid(self, pixel_values: Tensor | None = None) -> tuple[int, int]:
        """(rows, columns) of the patch grid for ``pixel_values`` (None: the configured size)."""
        if pixel_values is None:
            if self.interpolates_positions:
                raise ValueError(f"{self.model_class} accepts several input sizes: pass "
                                 "pixel_values to know its patch grid.")
            side = self.model.config.image_size // self.patch_size
            return side, side
        height, width = pixel_values.shape[-2:]
        return height // self.patch_size, width // self.patch_size

    # ------------------------------------------------------------------ LRP
    def attention_module(self, layer: nn.Module) -> nn.Module:
        """The module holding ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` in ``layer``."""
        return layer.attention

    def mlp_modules(self, layer: nn.Module) -> list[tuple[nn.Module, str]]:
        """The MLP's modules with their LRP roles (default: fc1, activation, fc2)."""
        mlp = layer.mlp
        return [(mlp.fc1, "mlp_linear"), (mlp.activation_fn, "activation"),
                (mlp.fc2, "mlp_linear")]

    def gated_forward(self, module: nn.Module, multiply):
        """For a gated MLP (role ``gated_product``): its forward with the product ``a * b``
        computed by ``multiply(a, b)``, so LRP can put a rule on it."""
        raise NotImplementedError(f"{self.model_class} has no gated MLP")

    def patch_embedding(self) -> nn.Conv2d:
        """The convolution that embeds the patches (stride = kernel size = patch size)."""
        return self.model.get_submodule(f"{self.body}.embeddings").patch_embeddings.projection

    def lrp_modules(self) -> list[tuple[nn.Module, str]]:
        """Every module an LRP rule applies to, with its role (one of :data:`LRP_ROLES`).

        Modules not listed (residual additions, layer scale, the token concatenation, dropout)
        keep their plain gradient, which conserves relevance for a sum or a per-channel scale.
        """
        modules = [(self.patch_embedding(), "patch_embedding")]
        for layer in self.layers:
            attention = self.attention_module(layer)
            modules += [(attention.q_proj, "query"), (attention.k_proj, "key"),
                        (attention.v_proj, "value"), (attention.o_proj, "attention_output")]
            modules += self.mlp_modules(layer)
        modules += [(m, "layer_norm") for m in self.model.modules() if isinstance(m, nn.LayerNorm)]
        modules += [(self.model.get_submodule(name), "classifier") for name in self.classifiers]
        return modules

    # ------------------------------------------------------------------ sanity check
    def randomization_stages(self) -> list[tuple[str, list[str]]]:
        """``[(stage, [module names])]``, top first: ``head`` (classifier(s) and the final norm),
        ``layer L`` … ``layer 1`` (numbered from 1), ``embeddings`` (patch projection, prefix
        tokens, position embeddings)."""
        return ([("head", [*self.classifiers, self.final_norm])]
                + [(f"layer {i + 1}", [f"{self.layers_path}.{i}"])
                   for i in reversed(range(self.num_layers))]
                + [("embeddings", [f"{self.body}.embeddings"])])
