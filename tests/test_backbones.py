"""Contract tests of helpers.backbones: every method on every adapter, on small random models.

One small random model per supported class (hidden 32, 2 layers, 4x4 or 4x5 patch grids; DINOv2
on a non-square input of another size than its config, so the grid must come from the pixels).
What the architectures differ in is written here once more, plainly and independently of the
adapters (:data:`PREFIX`, :func:`reference_rows`, :data:`LAYERS`); every method is compared with
a slow one-image reference (AttnLRP: CP-LRP without Gamma as plain autograd on a rewritten copy);
LeGrad's reference runs the model's *own* forward on a copy cut after each layer, so it does not
trust the adapter's head.
"""
import copy

import numpy as np
import pytest
import torch
from torch import nn
from transformers import (
    DeiTConfig, DeiTForImageClassification, DeiTForImageClassificationWithTeacher, Dinov2Config,
    Dinov2ForImageClassification, Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification, ViTConfig, ViTForImageClassification,
)

from helpers import metrics, viz
from helpers.backbones import ADAPTERS, IMAGENET_MEAN, IMAGENET_STD, adapter_for
from helpers.methods import METHODS, cls_attention_all, explain
from helpers.methods.attnlrp import PRESETS, attnlrp, layer_map, _rule_plan

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_labels=5,
              patch_size=8, attn_implementation="eager")
KINDS = {
    "vit": (ViTForImageClassification, lambda: ViTConfig(image_size=32, intermediate_size=64, **COMMON)),
    "deit": (DeiTForImageClassification, lambda: DeiTConfig(image_size=32, intermediate_size=64, **COMMON)),
    "deit_teacher": (DeiTForImageClassificationWithTeacher,
                     lambda: DeiTConfig(image_size=32, intermediate_size=64, **COMMON)),
    "dinov2": (Dinov2ForImageClassification,
               lambda: Dinov2Config(image_size=48, mlp_ratio=2, layerscale_value=0.5, **COMMON)),
    "dinov2_swiglu": (Dinov2ForImageClassification,
                      lambda: Dinov2Config(image_size=48, mlp_ratio=2, use_swiglu_ffn=True, **COMMON)),
    "dinov2_registers": (Dinov2WithRegistersForImageClassification,
                         lambda: Dinov2WithRegistersConfig(image_size=48, mlp_ratio=2,
                                                           num_register_tokens=3, **COMMON)),
}
# What the references know about each architecture, written independently of the adapters.
PREFIX = {"vit": 1, "deit": 2, "deit_teacher": 2, "dinov2": 1, "dinov2_swiglu": 1,
          "dinov2_registers": 4}
LAYERS = {"vit": "vit.layers", "deit": "deit.layers", "deit_teacher": "deit.layers",
          "dinov2": "dinov2.encoder.layer", "dinov2_swiglu": "dinov2.encoder.layer",
          "dinov2_registers": "dinov2_with_registers.encoder.layer"}
CONSTANTS = ("bias", "cls_token", "distillation_token", "register_tokens", "position_embeddings")
TARGETS = [1, 0, 4]


def make(kind, seed=0, zero_constants=False):
    """A random model whose attention is far from uniform (weights perturbed beyond the init)."""
    torch.manual_seed(seed)
    model_class, config = KINDS[kind]
    model = model_class(config()).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_(0.15 * torch.randn_like(parameter))
            if zero_constants and name.endswith(CONSTANTS):
                parameter.zero_()
    return model


def images(kind, batch=3, seed=1):
    height, width = (32, 40) if kind.startswith("dinov2") else (32, 32)
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def grid(kind):
    return (4, 5) if kind.startswith("dinov2") else (4, 4)


def assert_close(actual, expected, rtol):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = expected.abs().max().clamp(min=1e-12)
    error = ((actual - expected).abs().max() / scale).item()
    assert error <= rtol, f"relative error {error:.2e} > {rtol:.0e}"


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def model(kind):
    return make(kind)


# ---------------------------------------------------------------- slow references, one image each
def reference_rows(kind, matrix):
    """The patch columns of the token rows the head reads, ``[N, N]`` -> ``[patches]``."""
    p = PREFIX[kind]
    if kind in ("vit", "deit"):
        return matrix[0, p:]  # the CLS token alone
    if kind == "deit_teacher":
        return (matrix[0, p:] + matrix[1, p:]) / 2  # the two heads: CLS and distillation
    patch_rows = [matrix[i, p:] for i in range(p, matrix.shape[0])]
    return (matrix[0, p:] + sum(patch_rows) / len(patch_rows)) / 2  # concat(CLS, patch mean)


def reference_forward(model, image):
    outputs = model(pixel_values=image[None].clone().requires_grad_(True), output_attentions=True)
    return outputs.logits[0], outputs.attentions


def fuse(attention, head_fusion):
    heads = [attention[h] for h in range(attention.shape[0])]
    if head_fusion == "mean":
        return sum(heads) / len(heads)
    fused = heads[0]
    for head in heads[1:]:
        fused = torch.maximum(fused, head) if head_fusion == "max" else torch.minimum(fused, head)
    return fused


def rollout_of(fused_layers):
    n = fused_layers[0].shape[0]
    relevance = torch.eye(n)
    for fused in fused_layers:
        step = 0.5 * fused + 0.5 * torch.eye(n)
        step = torch.stack([step[row] / step[row].sum() for row in range(n)])
        relevance = step @ relevance
    return relevance


def reference_attention(kind, model, image, target, layer=-1, head_fusion="mean"):
    with torch.no_grad():
        _, attentions = reference_forward(model, image)
    heads = attentions[layer][0]
    return fuse(torch.stack([reference_rows(kind, heads[h]) for h in range(heads.shape[0])]),
                head_fusion)


def reference_rollout(kind, model, image, target, head_fusion="mean"):
    with torch.no_grad():
        _, attentions = reference_forward(model, image)
    return reference_rows(kind, rollout_of([fuse(a[0], head_fusion) for a in attentions]))


def reference_gradients(model, image, target):
    logits, attentions = reference_forward(model, image)
    gradients = torch.autograd.grad(logits[target], attentions)
    return [a[0].detach() for a in attentions], [g[0] for g in gradients]


def reference_chefer(kind, model, image, target):
    attentions, gradients = reference_gradients(model, image, target)
    n = attentions[0].shape[-1]
    relevance = torch.eye(n)
    for attention, gradient in zip(attentions, gradients):
        cam = sum(torch.relu(gradient[h] * attention[h]) for h in range(attention.shape[0]))
        relevance = relevance + (cam / attention.shape[0]) @ relevance
    return reference_rows(kind, relevance)


def reference_gmar(kind, model, image, target, norm="l1"):
    attentions, gradients = reference_gradients(model, image, target)
    fused_layers = []
    for attention, gradient in zip(attentions, gradients):
        strengths = [gradient[h].abs().sum() if norm == "l1" else gradient[h].pow(2).sum().sqrt()
                     for h in range(gradient.shape[0])]
        fused_layers.append(sum(s / sum(strengths) * attention[h] for h, s in enumerate(strengths)))
    return reference_rows(kind, rollout_of(fused_layers))


def reference_legrad(kind, model, image, target, layers=None):
    """Each layer's score from the model's own forward on a copy cut after that layer."""
    parent, name = LAYERS[kind].rsplit(".", 1)
    chosen = range(model.config.num_hidden_layers) if layers is None else layers
    maps = []
    for layer in chosen:
        truncated = copy.deepcopy(model)
        module_list = getattr(truncated.get_submodule(parent), name)
        setattr(truncated.get_submodule(parent), name, module_list[:layer + 1])
        logits, attentions = reference_forward(truncated, image)
        gradient, = torch.autograd.grad(logits[target], attentions[layer])
        maps.append(torch.relu(gradient[0]).mean(dim=0).mean(dim=0)[PREFIX[kind]:])
    return sum(maps) / len(maps)


def reference_cp_lrp(kind, model, image, target):
    """CP-LRP without Gamma as plain autograd on a copy whose modules are rewritten by type and name
    here: LayerNorm with its standard deviation detached, q and k projections detached, the
    identity rule ``x * (f(x) / x).detach()`` on every activation, and a gated MLP's product
    ``(a b.detach() + a.detach() b) / 2`` (each factor half); relevance = input x gradient."""
    copy_ = copy.deepcopy(model)
    for name, module in copy_.named_modules():
        if isinstance(module, nn.LayerNorm):
            module.forward = lambda x, m=module: (
                (x - x.mean(-1, keepdim=True))
                / (x.var(-1, keepdim=True, unbiased=False) + m.eps).sqrt().detach() * m.weight + m.bias)
        elif name.endswith(("q_proj", "k_proj")):
            module.forward = lambda x, f=module.forward: f(x).detach()
        elif name.endswith(("activation_fn", "act_fn")):
            module.forward = lambda x, f=module.forward: x * (f(x) / x).detach()
        elif hasattr(module, "gate_proj"):
            def gated(x, m=module):
                a, b = m.act_fn(m.gate_proj(x)), m.up_proj(x)
                return m.down_proj((a * b.detach() + a.detach() * b) / 2)
            module.forward = gated
    x = image[None].clone().requires_grad_(True)
    gradient, = torch.autograd.grad(copy_(pixel_values=x).logits[0, target], x)
    pixel = (x * gradient)[0].sum(0)
    rows, columns = grid(kind)
    return pixel.reshape(rows, 8, columns, 8).sum((1, 3))


REFERENCES = {
    "attention": (reference_attention, [{}, {"layer": 0, "head_fusion": "max"}]),
    "rollout": (reference_rollout, [{}, {"head_fusion": "min"}]),
    "chefer": (reference_chefer, [{}]),
    "gmar": (reference_gmar, [{"norm": "l2"}]),
    "legrad": (reference_legrad, [{}, {"layers": [1]}]),
    "attnlrp": (reference_cp_lrp, [{}]),
}


# ---------------------------------------------------------------- the adapter itself
def test_every_adapter_is_tested():
    assert {cls.__name__ for cls, _ in KINDS.values()} == set(ADAPTERS)


def test_prefix_tokens_and_grid_match_the_model(kind, model):
    adapter = adapter_for(model)
    pixel_values = images(kind, batch=1)
    with torch.no_grad():
        tokens = model(pixel_values, output_attentions=True).attentions[0].shape[-1]
    rows, columns = grid(kind)
    assert adapter.num_prefix == PREFIX[kind] == tokens - rows * columns
    assert adapter.grid(pixel_values) == (rows, columns)


def test_head_on_the_last_hidden_state_gives_the_logits(kind, model):
    pixel_values = images(kind)
    with torch.no_grad():
        outputs = model(pixel_values, output_hidden_states=True)
        torch.testing.assert_close(adapter_for(model).head(outputs.hidden_states[-1]),
                                   outputs.logits, rtol=1e-5, atol=1e-6)


def test_randomization_stages_cover_every_parameter_once(kind, model):
    stages = metrics.randomization_stages(model)
    assert [s for s, _ in stages] == ["head", "layer 2", "layer 1", "embeddings"]
    owners = {}
    for stage, names in stages:
        for module_name in names:
            for parameter_name, _ in model.get_submodule(module_name).named_parameters():
                owners.setdefault(f"{module_name}.{parameter_name}", []).append(stage)
    unused = {"dinov2.embeddings.mask_token", "dinov2_with_registers.embeddings.mask_token"}
    expected = {name for name, _ in model.named_parameters()} - unused
    assert set(owners) - unused == expected
    assert all(len(stages) == 1 for stages in owners.values())


def test_lrp_plan_covers_every_linear_conv_norm_and_activation(kind, model):
    plan = _rule_plan(model, 1.0, 0.5, "cp", False)
    planned = {name for name, _, _ in plan}
    kinds = (nn.Linear, nn.Conv2d, nn.LayerNorm)
    wanted = {name for name, m in model.named_modules()
              if isinstance(m, kinds) or name.endswith(("activation_fn", "act_fn"))}
    assert wanted <= planned, sorted(wanted - planned)
    assert "layer_scale" not in layer_map(model, "balanced")  # plain gradient: not listed


def test_unsupported_class_names_the_supported_ones():
    with pytest.raises(TypeError, match="Dinov2ForImageClassification"):
        adapter_for(make("vit").vit)


def test_to_image_undoes_each_familys_normalisation(kind, model):
    image = torch.rand(3, 8, 8)
    family = ((0.5,) * 3, (0.5,) * 3) if kind == "vit" else (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = (torch.tensor(v)[:, None, None] for v in family)
    np.testing.assert_allclose(viz.to_image((image - mean) / std, model=model),
                               image.permute(1, 2, 0).numpy(), atol=1e-6)


# ---------------------------------------------------------------- every method on every backbone
@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_method_matches_slow_reference(kind, model, method):
    pixel_values = images(kind)
    reference, option_sets = REFERENCES[method]
    for options in option_sets:
        maps = explain(model, pixel_values, method, target=TARGETS, **options)
        assert maps.shape == (3, *grid(kind))
        for b, target in enumerate(TARGETS):
            expected = reference(kind, model, pixel_values[b], target, **options)
            assert_close(maps[b], expected.reshape(grid(kind)), rtol=1e-4)


def test_cls_attention_all_reads_the_same_rows(kind, model):
    pixel_values = images(kind, batch=2)
    every = cls_attention_all(model, pixel_values)
    assert every.shape == (2, 2, 4, *grid(kind))
    torch.testing.assert_close(every[:, 0].mean(dim=1), explain(model, pixel_values, "attention", layer=0))


@pytest.mark.parametrize("preset", ["none", "balanced", "very_aggressive"])
def test_attnlrp_conserves_relevance_with_constants_zeroed(kind, preset):
    model = make(kind, zero_constants=True)
    pixel_values, targets = images(kind), torch.tensor(TARGETS)
    logits = model(pixel_values).logits.gather(1, targets[:, None])[:, 0].detach()
    pixel = attnlrp(model, pixel_values, targets, preset=preset, resolution="pixel")
    patch = explain(model, pixel_values, "attnlrp", target=TARGETS, preset=preset)
    assert pixel.shape == (3, *pixel_values.shape[-2:]) and patch.shape == (3, *grid(kind))
    assert (pixel.sum((1, 2)) / logits - 1).abs().max() <= 1e-3
    torch.testing.assert_close(patch.sum((1, 2)), pixel.sum((1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batch_equals_images_one_at_a_time(kind, model, method):
    pixel_values = images(kind, batch=3, seed=3)
    batch = explain(model, pixel_values, method, target=TARGETS)
    alone = torch.cat([explain(model, pixel_values[b:b + 1], method, target=t)
                       for b, t in enumerate(TARGETS)])
    assert_close(batch, alone, rtol=1e-5)
    pixels = explain(model, pixel_values, method, target=TARGETS, resolution="pixel")
    assert pixels.shape == (3, *pixel_values.shape[-2:])


def test_lrp_variants_sharing_all_but_conv_gamma_equal_separate_calls(kind, model):
    from helpers.methods import attnlrp as lrp

    x = images(kind)
    targets = torch.tensor([0, 2, 1])
    shared = lrp.input_relevance_per_conv_gamma(model, x, targets, [None, 0.25, 100.0], lin_gamma=0.5)
    assert shared is not None, "the patch embedding's input should be the pixel tensor itself"
    for conv_gamma, relevance in zip([None, 0.25, 100.0], shared):
        alone, _ = lrp.input_relevance(model, x, targets, conv_gamma=conv_gamma, lin_gamma=0.5)
        assert torch.equal(relevance, alone), conv_gamma


def test_reference_maps_alone_take_their_grid_from_the_pixels(kind, model):
    from helpers import evaluate

    maps = evaluate.explain_variants(model, images(kind), TARGETS, {}, progress=False)
    assert maps[evaluate.RANDOM].shape == maps[evaluate.UNIFORM].shape == (3, *grid(kind))


def test_no_side_effects_of_any_method(kind):
    """After every method: outputs, plain gradients, parameters, flags, config, hooks unchanged."""
    model = make(kind)
    pixel_values = images(kind, batch=2)
    model.train()
    adapter_for(model).layers[0].eval()  # a mixed mode that must survive
    model(pixel_values).logits.square().sum().backward()
    before_outputs = model(pixel_values, output_attentions=True)
    before = {
        "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "modes": [m.training for m in model.modules()],
        "config": model.config.to_dict(),
        "forwards": [("forward" in vars(m)) for m in model.modules()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for m in model.modules()],
    }
    for method in METHODS:
        explain(model, pixel_values, method)
        explain(model, pixel_values, method, target=1, resolution="pixel")
    explain(model, pixel_values, "attnlrp", preset="balanced", variant="attnlrp")
    after_outputs = model(pixel_values, output_attentions=True)
    assert torch.equal(before_outputs.logits, after_outputs.logits)
    assert all(torch.equal(a, b) for a, b in zip(before_outputs.attentions, after_outputs.attentions))
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == before["grads"].keys()
    assert all(torch.equal(grads[n], before["grads"][n]) for n in grads)
    assert all(torch.equal(p, before["params"][n]) for n, p in model.named_parameters())
    assert [m.training for m in model.modules()] == before["modes"]
    assert model.config.to_dict() == before["config"]
    assert [("forward" in vars(m)) for m in model.modules()] == before["forwards"]
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()] == before["hooks"]
    model.zero_grad()
    model(pixel_values).logits.square().sum().backward()  # plain gradients as before
    assert all(torch.equal(p.grad, before["grads"][n]) for n, p in model.named_parameters()
               if p.grad is not None)


def test_wrong_input_size_is_refused_with_the_fix(kind, model):
    pixel_values = images(kind, batch=1)
    with pytest.raises(ValueError, match="image processor"):
        explain(model, pixel_values[..., :28, :28], "rollout")
