"""AttnLRP / CP-LRP with Gamma rules for the Hugging Face classifiers of :mod:`helpers.backbones`.

Layer-wise Relevance Propagation redistributes the target logit ``f_t(x)`` backwards, layer by
layer, onto the input pixels. We use the *gradient x input* formulation of lxt (Achtibat et al.,
"AttnLRP: Attention-Aware Layer-wise Relevance Propagation for Transformers", ICML 2024):
every LRP rule is written as a modified backward pass, and the pixel relevance is

    R(x) = x * d~f_t / dx        (d~ = the gradient with the rules below in place)

summed over the colour channels (``resolution="pixel"``) or over each patch (``"patch"``).
The map is signed (positive = evidence for the target) and conserves relevance: with biases,
the CLS token and the position embeddings set to zero, ``sum R = f_t(x)`` (tested); with them,
part of ``f_t`` goes to those constants instead of the pixels.

Rules, module by module (``layer_map(model, ...)`` prints them for a given model):

- LayerNorm: identity rule -- the standard deviation is detached (lxt's ``layer_norm_forward``),
  so LayerNorm acts as the linear map ``(x - mean) / std * w`` in the backward pass (computed
  here by the fused ``layer_norm`` forward and a three-pass backward, the same numbers).
- MLP activation (GELU): identity rule (lxt's ``identity_rule_implicit``: gradient = f(x)/x).
- Attention, ``variant="cp"`` (default, lxt's map for torchvision's ViT): CP-LRP (Ali et al.,
  "XAI for Transformers: Better Explanations through Conservative Propagation", ICML 2022) --
  q and k are detached, so no relevance flows through q.k^T and the softmax; the attention
  matrix A acts as fixed weights and A.v is linear in v (LRP-0 via the plain gradient).
- Attention, ``variant="attnlrp"``: full AttnLRP, exactly lxt's ``wrap_attention_forward`` for
  Hugging Face attention: the gradients of q and k are divided by 4 and of v by 2 -- the uniform
  rule on the two bilinear products q.k^T and A.v (each factor gets half); the softmax keeps its
  plain gradient, which in the gradient x input form *is* AttnLRP's softmax rule
  ``R_in = x (R_out - s * sum R_out)`` (Proposition 3.1). This variant is not conservative
  through the softmax by design of the paper.
- Residual additions, the CLS token and position embeddings: plain gradient x input.
- Other backbones (the module of each role comes from the model's adapter): DeiT's distillation
  token and DINOv2's registers like the CLS token; DINOv2's layer scale (a per-channel scale)
  keeps its plain gradient, which conserves; a SwiGLU MLP ``down(silu(gate x) * up x)`` gets the
  identity rule on the SiLU and the uniform rule on the product (each factor gets half).
- Patch-embedding Conv2d: Gamma(``conv_gamma``); Linear layers: Gamma(``lin_gamma``) on the MLP
  (``fc1``, ``fc2``) and the classifier. This matches lxt's torchvision path, where zennit's
  ``(Linear -> Gamma)`` map reaches only those layers (torchvision's attention projections are
  not called as modules). ``gamma_in_attention=True`` also puts Gamma(``lin_gamma``) on the
  q/k/v/o projections (under CP-LRP q and k receive no relevance anyway). Layers without Gamma
  use the plain gradient (LRP-0). ``None`` means "no Gamma"; ``0`` runs the Gamma rule with
  gamma = 0, which equals LRP-0 up to the stabiliser.

The Gamma rule (Montavon et al., "Layer-Wise Relevance Propagation: An Overview", 2019; zennit's
generalised form for signed inputs) for ``y = Wx + b``, upper relevance ``R = y * grad_y``:

    R_in = x+ (c+ (W + gW+) + c- (W + gW-)) + x- (c+ (W + gW-) + c- (W + gW+))
    c+ = [y > 0] R / (y + g (W+x+ + W-x- + b+)),   c- = [y < 0] R / (y + g (W-x+ + W+x- + b-))

and the gradient handed on is ``R_in / x``. This is exactly zennit 0.5.1's ``Gamma`` under lxt's
``monkey_patch_zennit`` (tested to 1e-5), but computed in one backward with two extra products
(``|W||x|`` and ``c |W|``: ``W+x+ + W-x- = (Wx + |W||x|)/2`` and likewise in the backward)
instead of zennit's four re-run modified forwards -- and without patching zennit or lxt classes.
Measured by ``helpers.bench`` (random ViT-B/16, CPU, one thread, frozen parameters, median of 5
rounds against a forward+backward to the input, on a shared 2-core machine): AttnLRP costs
0.87-0.90x a forward+backward without Gamma and 1.51-1.60x with a Gamma preset, at batch 1 and 8;
lxt's own recipe with zennit's Gamma hooks, same maps: 4.4x (batch 1).

No side effects: lxt's own patches replace ``forward`` of whole classes for the whole process.
Here the rules are installed as *instance-level* ``forward`` attributes on this model's modules
only, with the model in eval mode (dropout off), and removed in a ``finally`` block; no hooks,
no configuration changes. ``presets`` and gammas: pass a ``preset`` name from ``PRESETS`` *or*
explicit ``conv_gamma``/``lin_gamma`` (passing both raises); nothing at all means no Gamma.
"""
from __future__ import annotations

import importlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

PRESETS = {
    "none": (None, None),
    "conservative": (0.5, 0.1),
    "balanced": (1.0, 0.5),
    "aggressive": (10.0, 1.0),
    "very_aggressive": (100.0, 1.0),
}
VARIANTS = ("cp", "attnlrp")
_GAMMA_EPSILON = 1e-6  # zennit's default stabiliser of the Gamma denominators
_INPUT_EPSILON = 1e-10  # lxt's stabiliser when turning relevance back into a gradient
_REMOVED_IN_TRANSFORMERS_5 = "find_pruneable_heads_and_indices"
_MISSING = object()


# --------------------------------------------------------------------------- lxt import
def _not_available_in_transformers_5(*args, **kwargs):
    raise NotImplementedError(
        f"{_REMOVED_IN_TRANSFORMERS_5} was removed in transformers 5; lxt's BERT head pruning "
        "cannot be used with this transformers version."
    )


@cache
def _lxt():
    """Import ``lxt.efficient`` (lxt 2.1) under transformers 5.

    lxt 2.1's BERT model file imports ``find_pruneable_heads_and_indices`` from
    ``transformers.pytorch_utils``, which transformers 5 removed, so ``import lxt.efficient``
    fails. We set a stand-in on that module only for the import (it raises if ever called; only
    lxt's BERT pruning would call it) and remove it again, leaving transformers untouched.
    """
    import transformers.pytorch_utils as pytorch_utils

    shimmed = not hasattr(pytorch_utils, _REMOVED_IN_TRANSFORMERS_5)
    if shimmed:
        setattr(pytorch_utils, _REMOVED_IN_TRANSFORMERS_5, _not_available_in_transformers_5)
    try:
        return importlib.import_module("lxt.efficient")
    finally:
        if shimmed:
            delattr(pytorch_utils, _REMOVED_IN_TRANSFORMERS_5)


# ------------------------------------------------------------------------ Gamma rule
@dataclass(frozen=True)
class _LinearOps:
    """The affine map of an ``nn.Linear`` and its transposed (input-gradient) map."""

    def forward(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def add_forward(self, base, x, weight, alpha):
        """``base + alpha * x W^T`` in one fused product (addmm)."""
        rows = torch.addmm(base.reshape(-1, base.shape[-1]), x.reshape(-1, x.shape[-1]), weight.t(),
                           alpha=alpha)
        return rows.view(base.shape)

    def transposed(self, grad, weight, input_shape):
        return grad @ weight

    def bias_term(self, bias, scale):
        """``scale |b| + eps``, shaped to broadcast against the output."""
        return bias.abs().mul_(scale).add_(_GAMMA_EPSILON)


@dataclass(frozen=True)
class _Conv2dOps:
    """The affine map of an ``nn.Conv2d`` (zero padding) and its transposed map.

    A patchifying convolution (stride = kernel size, no padding, dilation 1, one group: ViT's
    patch embedding) maps each patch independently, so its transposed map is one matrix product
    and a reshape -- much faster on a CPU than the general ``conv2d_input`` (the same numbers).
    """

    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    kernel_size: tuple

    def forward(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def add_forward(self, base, x, weight, alpha):
        return base.add_(self.forward(x, weight, None), alpha=alpha)

    def bias_term(self, bias, scale):
        return bias.abs().mul_(scale).add_(_GAMMA_EPSILON).view(-1, 1, 1)

    def _patchifies(self, input_shape):
        height, width = input_shape[-2:]
        kernel_h, kernel_w = self.kernel_size
        return (tuple(self.stride) == tuple(self.kernel_size) and tuple(self.padding) == (0, 0)
                and tuple(self.dilation) == (1, 1) and self.groups == 1
                and height % kernel_h == 0 and width % kernel_w == 0)

    def transposed(self, grad, weight, input_shape):
        if not self._patchifies(input_shape):
            return torch.nn.grad.conv2d_input(
                input_shape, weight, grad, self.stride, self.padding, self.dilation, self.groups
            )
        batch, channels, height, width = input_shape
        kernel_h, kernel_w = self.kernel_size
        rows, cols = height // kernel_h, width // kernel_w
        per_patch = grad.permute(0, 2, 3, 1) @ weight.reshape(weight.shape[0], -1)  # [B, h, w, C k k]
        per_patch = per_patch.view(batch, rows, cols, channels, kernel_h, kernel_w)
        return per_patch.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width)


def _layer_ops(module):
    if isinstance(module, nn.Linear):
        return _LinearOps()
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        return _Conv2dOps(module.stride, module.padding, module.dilation, module.groups,
                          module.kernel_size)
    raise TypeError(f"the Gamma rule supports nn.Linear and zero-padded nn.Conv2d, not {module}")


class _GammaRule(torch.autograd.Function):
    """Forward: the layer unchanged. Backward: zennit's Gamma rule in gradient x input form.

    zennit's rule, with g = gamma, c1 = 1 + g/2, h = g/2 and eps its stabiliser, is

        D = y + g (W+x+ + W-x- + b+)  (y > 0),   y + g (W-x+ + W+x- + b-)  (y < 0)
        c = R / stabilize(D),   R_in = x (c1 c W + h sign(x) (c sign(y)) |W|)

    As W+x+ + W-x- = (Wx + |W||x|)/2 and b+ = (b + |b|)/2, D = sign(y) (c1 |y| + h m) with
    m = |W||x| + |b| >= |y|; so sign(D) = sign(y), stabilize(D) = sign(y) (|D| + eps), and
    c = grad |y| / (|D| + eps) (0 where y = 0, as in zennit). The backward computes exactly
    this with one extra product in each direction (``|x| |W|^T``, ``(c sign y) |W|``) and a few
    element-wise passes; the gradient handed on is R_in / stabilize(x) (lxt's zennit patch),
    where x / stabilize(x) = |x| / (|x| + eps') (0 at x = 0).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, ops):
        output = ops.forward(x, weight, bias)
        ctx.save_for_backward(x, weight, bias, output)
        ctx.gamma, ctx.ops = gamma, ops
        return output

    @staticmethod
    def backward(ctx, grad_output):
        x, weight, bias, y = ctx.saved_tensors
        ops, half = ctx.ops, ctx.gamma / 2
        abs_x, abs_weight, abs_y = x.abs(), weight.abs(), y.abs()
        constant = y.new_tensor(_GAMMA_EPSILON) if bias is None else ops.bias_term(bias, half)
        # |D| + eps = c1 |y| + h (|x| |W|^T + |b|) + eps
        denominator = ops.add_forward(torch.add(constant, abs_y, alpha=1 + half), abs_x,
                                      abs_weight, half)
        scale = grad_output / denominator
        plain = ops.transposed(abs_y.mul_(scale), weight, x.shape)  # (c+ + c-) W
        signed = ops.transposed(scale.mul_(y), abs_weight, x.shape)  # (c+ - c-) |W|
        # (c1 plain + h sign(x) signed) |x| / (|x| + eps') = (c1 plain |x| + h signed x) / (|x| + eps')
        gradient = torch.addcmul(plain.mul_(abs_x).mul_(1 + half), signed, x, value=half)
        return gradient.div_(abs_x.add_(_INPUT_EPSILON)), None, None, None, None


def gamma_forward(module, gamma):
    """A forward for ``module`` (Linear/Conv2d) whose backward applies Gamma(``gamma``)."""
    ops = _layer_ops(module)

    def forward(x):
        bias = None if module.bias is None else module.bias.detach()
        return _GammaRule.apply(x, module.weight.detach(), bias, float(gamma), ops)

    return forward


# ------------------------------------------------------------------- LayerNorm rule
class _LayerNormIdentity(torch.autograd.Function):
    """LayerNorm with the identity rule: lxt's ``layer_norm_forward`` (std detached), fused.

    Forward: the module's own fused ``layer_norm`` (the same output). Backward: with the standard
    deviation held fixed, ``y = (x - mean x) w / std + b`` is linear in ``x`` and its transposed
    map sends ``g`` to ``u - mean(u)`` with ``u = g w / std`` -- three element-wise passes instead
    of autograd through lxt's eight-operation forward.
    """

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        output, _, inverse_std = torch.native_layer_norm(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(weight, inverse_std)
        ctx.dims = tuple(range(-len(normalized_shape), 0))
        return output

    @staticmethod
    def backward(ctx, grad_output):
        weight, inverse_std = ctx.saved_tensors
        scaled = grad_output * inverse_std if weight is None else grad_output * weight * inverse_std
        return scaled - scaled.mean(dim=ctx.dims, keepdim=True), None, None, None, None


def layer_norm_forward(module):
    """A forward for ``nn.LayerNorm`` ``module`` whose backward applies the identity rule."""

    def forward(x):
        weight = None if module.weight is None else module.weight.detach()
        bias = None if module.bias is None else module.bias.detach()
        return _LayerNormIdentity.apply(x, module.normalized_shape, weight, bias, module.eps)

    return forward


# ------------------------------------------------------------------------ rule plan
@dataclass(frozen=True)
class _Rule:
    """One module's rule: a description and a factory ``(module, forward) -> new forward``."""

    description: str
    make_forward: Callable


def _plain_or_gamma(gamma):
    if gamma is None:
        return _Rule("LRP-0 (plain gradient x input)", lambda module, forward: forward)
    return _Rule(f"Gamma(gamma={gamma:g})", lambda module, forward: gamma_forward(module, gamma))


def _then(rule, description, output_rule):
    """``rule`` followed by an output-side rule (a stop- or divide-gradient on its output)."""

    def make_forward(module, forward):
        inner = rule.make_forward(module, forward)
        return lambda x: output_rule(inner(x))

    return _Rule(f"{rule.description}, then {description}", make_forward)


def _attention_rules(variant, projection_rule):
    """Rules for the query/key/value projections implementing the attention part of ``variant``."""
    rules = _lxt().rules
    if variant == "cp":
        detach = _then(projection_rule, "stop-gradient (CP-LRP)", rules.stop_gradient)
        return {"query": detach, "key": detach, "value": projection_rule}
    quarter = _then(projection_rule, "gradient / 4 (uniform rule, AttnLRP)",
                    lambda t: rules.divide_gradient(t, 4))
    half = _then(projection_rule, "gradient / 2 (uniform rule, AttnLRP)",
                 lambda t: rules.divide_gradient(t, 2))
    return {"query": quarter, "key": quarter, "value": half}


def _rule_plan(model, conv_gamma, lin_gamma, variant, gamma_in_attention):
    """List of (module name, module, rule) for every module whose backward is modified.

    Which module plays which role comes from the model's backbone adapter
    (:meth:`helpers.backbones.Adapter.lrp_modules`); this function only gives each role its rule.
    """
    from ..backbones import adapter_for

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    adapter = adapter_for(model)
    lxt = _lxt()
    mlp_linear = _plain_or_gamma(lin_gamma)
    projection = mlp_linear if gamma_in_attention else _plain_or_gamma(None)
    rules = {
        "patch_embedding": _plain_or_gamma(conv_gamma),
        **_attention_rules(variant, projection),
        "attention_output": projection,
        "mlp_linear": mlp_linear,
        "classifier": mlp_linear,
        "layer_norm": _Rule("identity rule (std detached)",
                            lambda module, forward: layer_norm_forward(module)),
        "activation": _Rule("identity rule", lambda module, forward:
                            lambda x: lxt.rules.identity_rule_implicit(forward, x)),
        "gated_product": _Rule("uniform rule on the gate product (gradient / 2 to each factor)",
                               lambda module, forward: adapter.gated_forward(
                                   module, lambda a, b: lxt.rules.divide_gradient(a * b, 2))),
    }
    names = {module: name for name, module in model.named_modules()}
    return [(names[module], module, rules[role]) for module, role in adapter.lrp_modules()]


def resolve_gammas(preset=None, conv_gamma=None, lin_gamma=None):
    """``(conv_gamma, lin_gamma)`` from a preset name or explicit values (not both)."""
    if preset is not None:
        if conv_gamma is not None or lin_gamma is not None:
            raise ValueError(
                "pass either preset=... or conv_gamma/lin_gamma, not both "
                f"(got preset={preset!r}, conv_gamma={conv_gamma}, lin_gamma={lin_gamma})"
            )
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[preset]
    for name, gamma in (("conv_gamma", conv_gamma), ("lin_gamma", lin_gamma)):
        if gamma is not None and not float(gamma) >= 0:
            raise ValueError(f"{name} must be a number >= 0 or None (no Gamma), got {gamma!r}")
    return conv_gamma, lin_gamma


def layer_map(model, preset=None, conv_gamma=None, lin_gamma=None, variant="cp",
              gamma_in_attention=False):
    """Printable table of which rule each module of ``model`` gets (layer indices folded)."""
    conv_gamma, lin_gamma = resolve_gammas(preset, conv_gamma, lin_gamma)
    plan = _rule_plan(model, conv_gamma, lin_gamma, variant, gamma_in_attention)
    rows = {}
    for name, module, rule in plan:
        pattern = re.sub(r"\.\d+\.", ".*.", name)
        rows.setdefault((pattern, type(module).__name__, rule.description), 0)
        rows[(pattern, type(module).__name__, rule.description)] += 1
    softmax = ("no relevance (q, k detached: CP-LRP)" if variant == "cp"
               else "plain gradient x input = AttnLRP softmax rule")
    lines = [f"{pattern}  [{kind} x{count}]: {description}"
             for (pattern, kind, description), count in rows.items()]
    lines += [f"attention softmax(q.k^T): {softmax}",
              "attention matmuls q.k^T, A.v: " + ("A fixed, A.v linear in v (LRP-0)" if variant == "cp"
                                                 else "uniform rule (q, k / 4, v / 2)"),
              "residual additions, CLS token, position embeddings: plain gradient x input"]
    return "\n".join(lines)


# --------------------------------------------------------------------- applying rules
@contextmanager
def rules_applied(model, plan):
    """Install the plan's forwards on these module *instances*, in eval mode; undo on exit."""
    new_forwards = {module: rule.make_forward(module, module.forward) for _, module, rule in plan}
    saved_forwards = {module: module.__dict__.get("forward", _MISSING) for module in new_forwards}
    saved_training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        for module, forward in new_forwards.items():
            module.forward = forward
        yield model
    finally:
        for module, forward in saved_forwards.items():
            if forward is _MISSING:
                module.__dict__.pop("forward", None)
            else:
                module.forward = forward
        for module, training in saved_training.items():
            module.training = training


def input_relevance(model, pixel_values, targets, *, conv_gamma=None, lin_gamma=None,
                    variant="cp", gamma_in_attention=False):
    """Pixel relevance ``x * d~f_t/dx`` [B, C, H, W] and the logits of that same forward [B, K]."""
    plan = _rule_plan(model, conv_gamma, lin_gamma, variant, gamma_in_attention)
    if targets.shape != (pixel_values.shape[0],):
        raise ValueError(f"targets must have shape [{pixel_values.shape[0]}], got {tuple(targets.shape)}")
    inputs = pixel_values.detach().clone().requires_grad_(True)
    with rules_applied(model, plan), torch.enable_grad():
        logits = model(pixel_values=inputs).logits
        target_logits = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        (gradient,) = torch.autograd.grad(target_logits, inputs)
    return (inputs * gradient).detach(), logits.detach()


def input_relevance_per_conv_gamma(model, pixel_values, targets, conv_gammas, *, lin_gamma=None,
                                   variant="cp", gamma_in_attention=False):
    """``[input_relevance(..., conv_gamma=g, ...)[0] for g in conv_gammas]``, sharing everything but
    the patch embedding: the rules above it do not depend on ``conv_gamma``, so one forward and one
    backward to the patch embedding's output serve every ``conv_gamma``; each then only runs its
    rule on the patch embedding (one convolution forward and back). The same numbers as separate
    calls: the gradient reaching the embedding is the same tensor, and the last step runs the same
    rule code. ``None`` when the patch embedding's input is not the pixel tensor itself (then call
    :func:`input_relevance` per ``conv_gamma``)."""
    if targets.shape != (pixel_values.shape[0],):
        raise ValueError(f"targets must have shape [{pixel_values.shape[0]}], got {tuple(targets.shape)}")
    from ..backbones import adapter_for

    plan = _rule_plan(model, None, lin_gamma, variant, gamma_in_attention)
    embedding = adapter_for(model).patch_embedding()
    captured = {}

    def capture(module, forward):
        def capturing_forward(x):
            output = forward(x).detach().requires_grad_(True)  # the backward stops here
            captured.update(input=x.detach(), output=output)
            return output

        return capturing_forward

    plan = [(name, module, _Rule("captured", capture) if module is embedding else rule)
            for name, module, rule in plan]
    with rules_applied(model, plan), torch.enable_grad():
        logits = model(pixel_values=pixel_values.detach()).logits
        target_logits = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
        (output_gradient,) = torch.autograd.grad(target_logits, captured["output"])
    if not torch.equal(captured["input"], pixel_values):
        return None
    relevance = []
    with torch.enable_grad():
        for gamma in conv_gammas:
            inputs = pixel_values.detach().clone().requires_grad_(True)
            output = _plain_or_gamma(gamma).make_forward(embedding, embedding.forward)(inputs)
            (gradient,) = torch.autograd.grad(output, inputs, output_gradient)
            relevance.append((inputs * gradient).detach())
    return relevance


def attnlrp_many(model, pixel_values, targets, options_list) -> list:
    """``[attnlrp(model, pixel_values, targets, **options) for options in options_list]`` (patch
    maps), with the variants that differ only in ``conv_gamma`` sharing one forward and backward
    pass (:func:`input_relevance_per_conv_gamma`). The same maps as separate calls."""
    groups = {}
    for n, options in enumerate(options_list):
        options = dict(options)
        if options.pop("resolution", "patch") != "patch":
            raise ValueError("attnlrp_many computes patch maps; call attnlrp for resolution='pixel'")
        conv_gamma, lin_gamma = resolve_gammas(options.pop("preset", None), options.pop("conv_gamma", None),
                                               options.pop("lin_gamma", None))
        key = (lin_gamma, options.pop("variant", "cp"), options.pop("gamma_in_attention", False))
        if options:
            raise TypeError(f"attnlrp does not take option(s) {sorted(options)}")
        groups.setdefault(key, []).append((n, conv_gamma))
    maps = [None] * len(options_list)
    for (lin_gamma, variant, gamma_in_attention), members in groups.items():
        conv_gammas = [conv_gamma for _, conv_gamma in members]
        shared = None
        if len(members) > 1:
            shared = input_relevance_per_conv_gamma(model, pixel_values, targets, conv_gammas,
                                                    lin_gamma=lin_gamma, variant=variant,
                                                    gamma_in_attention=gamma_in_attention)
        if shared is None:
            shared = [input_relevance(model, pixel_values, targets, conv_gamma=conv_gamma, lin_gamma=lin_gamma,
                                      variant=variant, gamma_in_attention=gamma_in_attention)[0]
                      for conv_gamma in conv_gammas]
        for (n, _), relevance in zip(members, shared):
            maps[n] = sum_per_patch(relevance.sum(dim=1), model.config.patch_size)
    return maps


def attnlrp(model, pixel_values, targets, *, resolution="patch", preset=None, conv_gamma=None,
            lin_gamma=None, variant="cp", gamma_in_attention=False):
    """AttnLRP (Achtibat et al. 2024) relevance of ``targets`` for a HF ViT classifier.

    Returns [B, H, W] (summed over colour channels) for ``resolution="pixel"``, else [B, h, w]
    (summed per patch, the same total). ``preset`` (a key of ``PRESETS``) or explicit
    ``conv_gamma``/``lin_gamma`` choose the Gamma rules; ``variant`` is ``"cp"`` (CP-LRP in the
    attention, lxt's ViT default) or ``"attnlrp"``. See the module docstring for every rule.
    """
    if resolution not in ("patch", "pixel"):
        raise ValueError(f"resolution must be 'patch' or 'pixel', got {resolution!r}")
    conv_gamma, lin_gamma = resolve_gammas(preset, conv_gamma, lin_gamma)
    relevance, _ = input_relevance(model, pixel_values, targets, conv_gamma=conv_gamma,
                                   lin_gamma=lin_gamma, variant=variant,
                                   gamma_in_attention=gamma_in_attention)
    pixel_map = relevance.sum(dim=1)
    if resolution == "pixel":
        return pixel_map
    return sum_per_patch(pixel_map, model.config.patch_size)


def sum_per_patch(pixel_map, patch_size):
    """[B, H, W] -> [B, H/p, W/p]: the relevance of each p x p patch (sums are kept)."""
    batch, height, width = pixel_map.shape
    patches = pixel_map.reshape(batch, height // patch_size, patch_size, width // patch_size, patch_size)
    return patches.sum(dim=(2, 4))


attnlrp.native_pixel = True
