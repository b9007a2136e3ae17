"""Tests of helpers.methods.attnlrp on small random Hugging Face ViTs (eager attention)."""
from functools import partial

import pytest
import torch
from torch import nn
from transformers import ViTConfig, ViTForImageClassification
from transformers.activations import GELUActivation
from transformers.models.vit import modeling_vit
from zennit.composites import LayerMapComposite, NameMapComposite
from zennit.core import BasicHook
from zennit.rules import Gamma

from helpers.bench import lxt_relevance, restored_classes, torchvision_copy
from helpers.methods.attnlrp import (
    PRESETS, _lxt, attnlrp, gamma_forward, input_relevance, layer_map, resolve_gammas,
)

IMAGE, PATCH, HIDDEN, LAYERS, HEADS, MLP, CLASSES = 32, 8, 32, 2, 4, 64, 5
PATCHED_BY_LXT = (nn.LayerNorm, nn.GELU, nn.MultiheadAttention, BasicHook)


def make_vit(seed=0, zero_constants=False, dropout=0.0):
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=IMAGE, patch_size=PATCH, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=MLP, num_labels=CLASSES,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    config._attn_implementation = "eager"
    model = ViTForImageClassification(config).eval()
    if zero_constants:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("bias") or "cls_token" in name or "position_embeddings" in name:
                    param.zero_()
    return model


def images(batch=3, seed=1):
    return torch.randn(batch, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))


def relative_error(actual, expected):
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.fixture(scope="module")
def zero_vit():
    return make_vit(zero_constants=True)


@pytest.fixture(scope="module")
def vit():
    return make_vit(seed=3)


# ------------------------------------------------------------------ Gamma rule
@pytest.mark.parametrize("gamma", [0.1, 1.0, 100.0])
@pytest.mark.parametrize("kind", ["linear", "linear_no_bias", "patchify", "conv"])
def test_gamma_rule_equals_zennit_gamma_under_lxt(kind, gamma):
    torch.manual_seed(0)
    layer, x = {
        "linear": lambda: (nn.Linear(24, 16), torch.randn(4, 7, 24)),
        "linear_no_bias": lambda: (nn.Linear(24, 16, bias=False), torch.randn(4, 7, 24)),
        "patchify": lambda: (nn.Conv2d(3, 8, kernel_size=4, stride=4), torch.randn(2, 3, 16, 16)),
        "conv": lambda: (nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1), torch.randn(2, 3, 15, 15)),
    }[kind]()
    with torch.no_grad():
        x[0, ..., :3] = 0  # inputs at zero get no relevance (zennit's stabilised division)
    upstream = torch.randn_like(layer(x))

    x_zennit = x.clone().requires_grad_(True)
    with restored_classes((BasicHook,)):
        _lxt().monkey_patch_zennit()
        composite = LayerMapComposite([(type(layer), Gamma(gamma))])
        with composite.context(layer):
            (layer(x_zennit) * upstream).sum().backward()
    expected = x * x_zennit.grad

    x_ours = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(gamma_forward(layer, gamma)(x_ours), x_ours, upstream)
    assert relative_error(x * gradient, expected) <= 1e-5
    assert not layer._forward_hooks and not layer._forward_pre_hooks


# ------------------------------------------------------------------ conservation
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_relevance_sums_to_target_logit_without_biases(zero_vit, preset):
    x, targets = images(), torch.tensor([0, 3, 4])
    logits = zero_vit(pixel_values=x).logits.gather(1, targets[:, None])[:, 0]
    pixel = attnlrp(zero_vit, x, targets, preset=preset, resolution="pixel")
    patch = attnlrp(zero_vit, x, targets, preset=preset, resolution="patch")
    assert pixel.shape == (3, IMAGE, IMAGE) and patch.shape == (3, IMAGE // PATCH, IMAGE // PATCH)
    assert (pixel.sum((1, 2)) / logits - 1).abs().max() <= 1e-3
    torch.testing.assert_close(patch.sum((1, 2)), pixel.sum((1, 2)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(patch[:, 1, 2], pixel[:, 8:16, 16:24].sum((1, 2)), rtol=1e-5, atol=1e-6)


def test_gamma_leaves_the_forward_logits_unchanged(vit):
    x, targets = images(), torch.tensor([1, 1, 2])
    plain = vit(pixel_values=x).logits
    _, without_gamma = input_relevance(vit, x, targets)
    torch.testing.assert_close(without_gamma, plain, rtol=1e-5, atol=1e-6)
    for preset, (conv_gamma, lin_gamma) in PRESETS.items():
        _, logits = input_relevance(vit, x, targets, conv_gamma=conv_gamma, lin_gamma=lin_gamma,
                                    gamma_in_attention=True)
        assert torch.equal(logits, without_gamma), preset


# ------------------------------------------------------------------ lxt's torchvision path
@pytest.mark.parametrize("preset", ["none", "balanced", "aggressive"])
def test_equals_lxt_on_torchvision_vit(vit, preset):
    x, targets = images(), torch.tensor([0, 2, 4])
    copy = torchvision_copy(vit)
    torch.testing.assert_close(copy(x), vit(pixel_values=x).logits, rtol=1e-5, atol=1e-5)
    expected = lxt_relevance(copy, x, targets, *PRESETS[preset])
    ours = attnlrp(vit, x, targets, preset=preset, resolution="pixel")
    assert relative_error(ours, expected) <= 1e-4
    assert nn.LayerNorm.forward is nn.modules.normalization.LayerNorm.__dict__["forward"]
    assert not hasattr(nn.MultiheadAttention, "original_forward")


# ------------------------------------------------------------------ lxt's rules, class-patched on HF
@pytest.mark.parametrize("variant", ["cp", "attnlrp"])
def test_equals_lxt_rules_patched_on_hf_classes(vit, variant, monkeypatch):
    """Reference: lxt's patches applied class-wide to HF's modules, zennit Gamma by name."""
    lxt, (conv_gamma, lin_gamma) = _lxt(), PRESETS["balanced"]
    x, targets = images(), torch.tensor([4, 0, 1])
    ours = attnlrp(vit, x, targets, preset="balanced", variant=variant, resolution="pixel")

    wrap = lxt.patches.cp_wrap_attention_forward if variant == "cp" else lxt.patches.wrap_attention_forward
    monkeypatch.setattr(modeling_vit, "eager_attention_forward", wrap(modeling_vit.eager_attention_forward))
    monkeypatch.setattr(nn.LayerNorm, "forward", lxt.patches.layer_norm_forward)
    gelu = GELUActivation.forward
    monkeypatch.setattr(GELUActivation, "forward",
                        lambda self, t: lxt.rules.identity_rule_implicit(partial(gelu, self), t))
    mlp = [f"vit.layers.{i}.mlp.{fc}" for i in range(LAYERS) for fc in ("fc1", "fc2")]
    composite = NameMapComposite([((("vit.embeddings.patch_embeddings.projection",), Gamma(conv_gamma))),
                                  (tuple(mlp) + ("classifier",), Gamma(lin_gamma))])
    inputs = x.clone().requires_grad_(True)
    with restored_classes((BasicHook,)):
        lxt.monkey_patch_zennit()
        with composite.context(vit):
            vit(pixel_values=inputs).logits.gather(1, targets[:, None]).sum().backward()
    assert relative_error(ours, (inputs * inputs.grad).sum(1)) <= 1e-4


# ------------------------------------------------------------------ batches and targets
def test_batch_equals_one_by_one(vit):
    x, targets = images(4), torch.tensor([0, 1, 2, 3])
    batched = attnlrp(vit, x, targets, preset="balanced")
    single = torch.cat([attnlrp(vit, x[i:i + 1], targets[i:i + 1], preset="balanced") for i in range(4)])
    assert relative_error(batched, single) <= 1e-5


def test_each_image_is_explained_for_its_own_target(zero_vit):
    x = images(1).expand(CLASSES, -1, -1, -1)
    targets = torch.arange(CLASSES)
    maps = attnlrp(zero_vit, x, targets, preset="conservative")
    logits = zero_vit(pixel_values=x[:1]).logits[0]
    torch.testing.assert_close(maps.sum((1, 2)), logits, rtol=1e-3, atol=1e-5)
    assert relative_error(maps[0], maps[1]) > 1e-2
    with pytest.raises(ValueError, match="targets must have shape"):
        attnlrp(zero_vit, x, targets[:2])


# ------------------------------------------------------------------ options
def test_preset_and_gamma_options():
    assert resolve_gammas("balanced") == (1.0, 0.5)
    assert resolve_gammas(conv_gamma=3.0) == (3.0, None)
    assert resolve_gammas() == (None, None)
    with pytest.raises(ValueError, match="not both"):
        resolve_gammas("balanced", lin_gamma=0.2)
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_gammas("gentle")
    with pytest.raises(ValueError, match=">= 0"):
        resolve_gammas(lin_gamma=-1)


def test_layer_map_names_every_rule(vit):
    cp = layer_map(vit, "balanced")
    assert "vit.embeddings.patch_embeddings.projection  [Conv2d x1]: Gamma(gamma=1)" in cp
    assert f"vit.layers.*.mlp.fc1  [Linear x{LAYERS}]: Gamma(gamma=0.5)" in cp
    assert "classifier  [Linear x1]: Gamma(gamma=0.5)" in cp
    assert "q_proj  [Linear x2]: LRP-0 (plain gradient x input), then stop-gradient" in cp
    assert "layernorm_before  [LayerNorm x2]: identity rule" in cp
    assert "activation_fn  [GELUActivation x2]: identity rule" in cp
    full = layer_map(vit, lin_gamma=0.1, variant="attnlrp", gamma_in_attention=True)
    assert "q_proj  [Linear x2]: Gamma(gamma=0.1), then gradient / 4" in full
    assert "v_proj  [Linear x2]: Gamma(gamma=0.1), then gradient / 2" in full
    with pytest.raises(ValueError, match="variant"):
        layer_map(vit, variant="full")


# ------------------------------------------------------------------ no side effects
def plain_state(model, x):
    model.zero_grad(set_to_none=True)
    logits = model(pixel_values=x).logits
    logits[:, 0].sum().backward()
    grads = {name: param.grad.clone() for name, param in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return logits.detach(), grads


def assert_same_state(before, after):
    assert torch.equal(before[0], after[0])
    assert before[1].keys() == after[1].keys()
    assert all(torch.equal(before[1][name], after[1][name]) for name in before[1])


def test_no_side_effects(vit):
    other, x = make_vit(seed=7), images(2)
    before, other_before = plain_state(vit, x), plain_state(other, x)
    modules_before = {name: dict(vars(module)) for name, module in vit.named_modules()}
    classes_before = {cls: dict(vars(cls)) for cls in PATCHED_BY_LXT + (GELUActivation,)}
    for preset in PRESETS:
        for variant in ("cp", "attnlrp"):
            attnlrp(vit, x, torch.tensor([1, 2]), preset=preset, variant=variant, gamma_in_attention=True)
    assert_same_state(before, plain_state(vit, x))
    assert_same_state(other_before, plain_state(other, x))
    for name, module in vit.named_modules():
        assert dict(vars(module)) == modules_before[name], name
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not module._backward_pre_hooks
        assert "forward" not in vars(module)
    assert {cls: dict(vars(cls)) for cls in classes_before} == classes_before
    assert all(param.grad is None for param in vit.parameters())


def test_dropout_is_off_during_the_explanation_and_training_mode_is_restored():
    model, x, targets = make_vit(seed=2, dropout=0.5), images(2), torch.tensor([0, 1])
    expected = attnlrp(model, x, targets, preset="balanced")
    model.train()
    assert torch.equal(attnlrp(model, x, targets, preset="balanced"), expected)
    assert all(module.training for module in model.modules())
