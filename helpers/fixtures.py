"""Fixed inputs for the graded exercises (``assignments/``): small, seeded, offline and fast.

A student tries their code on these inputs in the exercise notebook; the exercises' tests check it
against ``helpers`` on inputs of the same kinds, with other seeds and shapes (the hidden tests), so
grading one submission takes seconds on a CPU. Nothing here consumes the global random state.

- Models: :func:`tiny_vit` (random weights, any small shape), :func:`trained_tiny_vit` (the offline
  world's trained model, without its image processor) and :func:`scenes` to feed it.
- Reference intermediate results computed with ``helpers``: :func:`attentions`,
  :func:`attentions_and_gradients` (Chefer, GMAR), :func:`layer_gradients` (LeGrad) and
  :func:`gamma_reference` (the Gamma rule on one Linear layer).
- Synthetic data: :func:`imagenet_a_logits`, :func:`overconfident_logits`, :func:`linear_case`,
  :func:`random_masks`.
- What the tests assert with: :func:`assert_close` and :func:`assert_own_code`, whose messages are
  what a student reads when a check fails.
"""
from __future__ import annotations

import types

import torch
from torch import Tensor


# ----------------------------------------------------------------------------------------- models
def tiny_vit(seed: int = 0, *, image_size: int = 32, patch_size: int = 8, layers: int = 2,
             heads: int = 3, hidden: int = 24, labels: int = 5, noise: float = 0.15):
    """A random ``ViTForImageClassification`` (eager attention, eval mode, float32).

    The default initialisation plus ``N(0, noise²)`` on every parameter: a freshly initialised ViT
    attends almost uniformly, which would hide the difference between a right and a wrong rollout.
    """
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=image_size, patch_size=patch_size, hidden_size=hidden,
                       num_hidden_layers=layers, num_attention_heads=heads,
                       intermediate_size=2 * hidden, num_labels=labels,
                       attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTForImageClassification(config).eval()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(noise * torch.randn_like(parameter))
    return model


def images(model, n: int = 2, seed: int = 1) -> Tensor:
    """``n`` images of standard-normal pixels at the model's input size: ``[n, 3, S, S]``."""
    size = model.config.image_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.config.num_channels, size, size, generator=generator)


def try_inputs():
    """The inputs notebook 03's questions are tried and checked on: ``(model, pixel_values,
    targets)`` -- :func:`tiny_vit` (seed 0), two :func:`images` and the target classes 1 and 3."""
    model = tiny_vit(seed=0)
    return model, images(model, n=2), torch.tensor([1, 3])


def trained_tiny_vit():
    """The offline world's trained tiny ViT (``data/tiny_vit``), eval mode, eager attention.

    Like ``helpers.load_model("tiny")`` without the image processor (whose import is slow): the
    scenes of :func:`scenes` are already normalised as the processor would.
    """
    from transformers import ViTForImageClassification
    from transformers.utils import logging as hf_logging

    from .models import TINY_DIR

    hf_logging.disable_progress_bar()  # a "Loading weights" bar would stay in saved notebooks
    return ViTForImageClassification.from_pretrained(
        str(TINY_DIR), attn_implementation="eager", use_safetensors=True,
        local_files_only=True).eval()


def scenes(n: int = 4, split: str = "hard", seed: int = 0):
    """``n`` generated scenes: ``(pixel_values [n, 3, 224, 224], masks [n, 224, 224], labels [n],
    class_names)`` (:class:`helpers.scenes.SceneDataset`)."""
    from .scenes import SceneDataset

    dataset = SceneDataset(split, n=n, seed=seed)
    items = [dataset[i] for i in range(n)]
    return (torch.stack([item["pixel_values"] for item in items]),
            torch.stack([item["mask"] for item in items]),
            torch.tensor([item["label"] for item in items]), list(dataset.class_names))


# ------------------------------------------------------------- reference intermediate results
def attentions(model, pixel_values: Tensor) -> list[Tensor]:
    """Every layer's post-softmax attention ``[B, heads, N, N]`` (``helpers.methods``' forward)."""
    from .methods import _base

    return list(_base.forward(model, pixel_values, track_grad=False).attentions)


def attentions_and_gradients(model, pixel_values: Tensor, targets: Tensor):
    """Every layer's attention ``A_l`` and ``∂(Σ_b logit[b, t_b])/∂A_l``: two lists of
    ``[B, heads, N, N]`` (detached), from ``helpers.methods``' own forward and backward."""
    from .methods import _base

    outputs = _base.forward(model, pixel_values, track_grad=True)
    score = _base.target_score(outputs.logits, targets)
    gradients = _base.attention_gradients(score, outputs.attentions)
    return [a.detach() for a in outputs.attentions], [g.detach() for g in gradients]


def layer_gradients(model, pixel_values: Tensor, targets: Tensor) -> list[Tensor]:
    """LeGrad's per-layer gradients: ``∂s_l/∂A_l`` for every layer ``l`` (``[B, heads, N, N]``),
    ``s_l`` the head's score for ``t`` read from layer ``l``'s CLS token
    (:func:`helpers.methods.legrad.layer_score`)."""
    from .methods import _base
    from .methods.legrad import layer_score

    outputs = _base.forward(model, pixel_values, track_grad=True, hidden_states=True)
    gradients = []
    for index, attention in enumerate(outputs.attentions):
        score = layer_score(model, outputs.hidden_states[index + 1], targets)
        gradient, = torch.autograd.grad(score, attention, retain_graph=True)
        gradients.append(gradient.detach())
    return gradients


def gamma_reference(x: Tensor, weight: Tensor, bias: Tensor | None, relevance: Tensor,
                    gamma: float) -> Tensor:
    """Input relevance ``[B, in]`` of ``y = x Wᵀ + b`` under the Gamma rule, as AttnLRP applies it
    (:func:`helpers.methods.attnlrp.gamma_forward`): relevance ``R`` of the outputs is passed down
    as the gradient ``R / y``, and the input relevance is ``x ⊙ gradient``."""
    from torch import nn

    from .methods.attnlrp import gamma_forward

    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    inputs = x.detach().clone().requires_grad_(True)
    outputs = gamma_forward(layer, gamma)(inputs)
    gradient, = torch.autograd.grad(outputs, inputs, grad_outputs=relevance / outputs)
    return (inputs * gradient).detach()


# ----------------------------------------------------------------------------- synthetic data
def linear_case(seed: int = 0, batch: int = 3, inputs: int = 6, outputs: int = 4,
                bias: bool = True):
    """``(x, weight, bias, relevance)`` for one Linear layer, float64: signed inputs, weights
    ``N(0, 1/inputs)``, bias ``N(0, 0.3²)`` (or None), and the output relevance ``R = y ⊙ g`` of an
    upstream gradient ``g`` (LRP's relevance is proportional to the output it explains)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)

    x, weight = normal(batch, inputs), normal(outputs, inputs, scale=inputs ** -0.5)
    b = normal(outputs, scale=0.3) if bias else None
    y = x @ weight.T + (0 if b is None else b)
    return x, weight, b, y * normal(batch, outputs)


# ----------------------------------------------------------------------------- synthetic data
def imagenet_a_logits(n: int = 8, seed: int = 0):
    """``(logits [n, 1000], labels [n], head_indices)`` shaped like ViT-B/16 on ImageNet-A.

    ``head_indices``: the 200 ImageNet-A classes as indices of the 1000-way head (the official
    table); ``labels``: each image's true class as a head index. Every other image gets a boost on
    its true class, and some images' overall arg-max lies outside the 200 classes, so the masked
    and the naive arg-max disagree.
    """
    from .data import imagenet_a_classes

    head = torch.tensor(imagenet_a_classes().head_indices)
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1000, generator=generator)
    labels = head[torch.randint(len(head), (n,), generator=generator)]
    rows = torch.arange(n)
    logits[rows[::2], labels[::2]] += 3.0
    outside = torch.ones(1000, dtype=torch.bool)
    outside[head] = False
    others = outside.nonzero()[:, 0]
    logits[rows[1::2], others[torch.randint(len(others), (len(rows[1::2]),), generator=generator)]] += 5.0
    return logits, labels, head.tolist()


def overconfident_logits(n: int = 500, classes: int = 6, temperature: float = 2.5,
                         seed: int = 0):
    """``(logits [n, classes], labels [n])``: labels drawn from ``softmax(z)``, logits ``z · T``.

    A model that reports these logits is over-confident by a factor ``temperature``: dividing them
    by that temperature calibrates it (Guo et al. 2017).
    """
    generator = torch.Generator().manual_seed(seed)
    calibrated = 1.5 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(calibrated.softmax(-1), 1, generator=generator)[:, 0]
    return (calibrated * temperature).float(), labels


def random_masks(n: int, size: int, seed: int = 0) -> Tensor:
    """Boolean object masks ``[n, size, size]``: one random axis-aligned rectangle each (at least
    2 x 2 pixels), whose edges rarely fall on patch borders."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for mask in masks:
        height, width = torch.randint(2, size // 2, (2,), generator=generator).tolist()
        top = int(torch.randint(0, size - height, (1,), generator=generator))
        left = int(torch.randint(0, size - width, (1,), generator=generator))
        mask[top:top + height, left:left + width] = True
    return masks


# ------------------------------------------------------------------------ what tests assert with
def assert_close(actual, expected: Tensor, tolerance: float = 1e-5, what: str = "your result"):
    """Raise ``AssertionError`` (with a message for the student) unless ``actual`` is a tensor of
    ``expected``'s shape whose largest difference is at most ``tolerance`` times the largest
    magnitude of ``expected``."""
    assert isinstance(actual, Tensor), \
        f"{what} should be a torch.Tensor, got {type(actual).__name__}"
    assert tuple(actual.shape) == tuple(expected.shape), \
        f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    actual = actual.detach().to(expected.dtype)
    assert torch.isfinite(actual).all(), f"{what} contains NaN or infinite values"
    scale = expected.abs().max().clamp(min=1e-12)
    error = float((actual - expected).abs().max() / scale)
    assert error <= tolerance, (
        f"{what} differs from the reference by {error:.1e} (relative to its largest entry; "
        f"allowed {tolerance:.0e})")


def _names_used(code: types.CodeType):
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _names_used(constant)


def assert_own_code(function) -> None:
    """Raise ``AssertionError`` if ``function`` calls into ``helpers`` (directly, through an alias
    or a module attribute): the exercise is to write what ``helpers`` hides."""
    assert callable(function), f"expected a function, got {type(function).__name__}"
    namespace = getattr(function, "__globals__", {})
    for name in set(_names_used(function.__code__)):
        value = namespace.get(name)
        module = value.__name__ if isinstance(value, types.ModuleType) else getattr(
            value, "__module__", None)
        assert not (isinstance(module, str) and module.split(".")[0] == "helpers"), (
            f"{function.__name__} uses {name!r} from {module}: write this part yourself "
            "(compare with helpers in a separate cell instead)")
