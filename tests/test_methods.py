"""Tests of helpers.methods (explain, the registry and the attention/gradient methods).

Small random-weight ViTs built here; every method is compared with a slow reference written
plainly below (one image at a time, explicit loops), which is what catches real bugs.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import ViTConfig, ViTForImageClassification

from helpers.methods import METHODS, cls_attention_all, explain
from helpers.methods.attention import fuse_heads
from helpers.methods.chefer import accumulate_relevance, gradient_weighted_attention
from helpers.methods.gmar import head_weights, weighted_heads
from helpers.methods.legrad import layer_indices
from helpers.methods.rollout import discard_lowest, rollout_matrix, with_residual

CONFIGS = {
    # a tiny ViT: 4x4 patch grid
    "tiny": dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=3,
                 num_attention_heads=4, intermediate_size=128, num_labels=7),
    # a DeiT-like shape: other width, 3 heads, no qkv bias, 5x5 grid
    "deit_like": dict(image_size=40, patch_size=8, hidden_size=48, num_hidden_layers=2,
                      num_attention_heads=3, intermediate_size=96, num_labels=5, qkv_bias=False),
}


def make_vit(name="tiny", seed=0, attn_implementation="eager"):
    """A random ViT whose attention is far from uniform (weights perturbed beyond the init)."""
    torch.manual_seed(seed)
    config = ViTConfig(**CONFIGS[name], attn_implementation=attn_implementation)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.15 * torch.randn_like(parameter))
    return model


def images(model, batch=3, seed=1):
    size = model.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_close(actual, expected, rtol):
    """Equal up to ``rtol`` times the largest magnitude of ``expected``."""
    assert actual.shape == expected.shape
    scale = expected.abs().max().clamp(min=1e-12)
    error = ((actual - expected).abs().max() / scale).item()
    assert error <= rtol, f"relative error {error:.2e} > {rtol:.0e}"


# ---------------------------------------------------------------- slow references, one image each
def reference_forward(model, image):
    """Logits and attention maps ([heads, N, N] per layer) of one image, attention maps live."""
    outputs = model(pixel_values=image[None].clone().requires_grad_(True), output_attentions=True)
    return outputs.logits[0], outputs.attentions


def reference_fuse(attention, head_fusion):
    heads = [attention[h] for h in range(attention.shape[0])]
    fused = heads[0].clone()
    for head in heads[1:]:
        if head_fusion == "mean":
            fused = fused + head
        elif head_fusion == "max":
            fused = torch.maximum(fused, head)
        else:
            fused = torch.minimum(fused, head)
    return fused / len(heads) if head_fusion == "mean" else fused


def reference_discard(fused, ratio):
    """Zero the floor(ratio*N*N) smallest entries, walking the entries in sorted order."""
    n = fused.shape[0]
    count = int(ratio * n * n)
    result = fused.clone()
    zeroed = 0
    for position in torch.argsort(fused.flatten()).tolist():
        if zeroed == count:
            break
        if position == 0:
            continue
        result[position // n, position % n] = 0.0
        zeroed += 1
    return result


def reference_rollout_of(fused_layers):
    n = fused_layers[0].shape[0]
    relevance = torch.eye(n)
    for fused in fused_layers:
        step = 0.5 * fused + 0.5 * torch.eye(n)
        for row in range(n):
            step[row] = step[row] / step[row].sum()
        relevance = step @ relevance
    return relevance[0, 1:]


def reference_attention(model, image, target, layer=-1, head_fusion="mean"):
    with torch.no_grad():
        _, attentions = reference_forward(model, image)
    return reference_fuse(attentions[layer][0], head_fusion)[0, 1:]


def reference_rollout(model, image, target, head_fusion="mean", discard_ratio=0.0):
    with torch.no_grad():
        _, attentions = reference_forward(model, image)
    return reference_rollout_of([reference_discard(reference_fuse(a[0], head_fusion), discard_ratio)
                                 for a in attentions])


def reference_gradients(model, image, target):
    logits, attentions = reference_forward(model, image)
    gradients = torch.autograd.grad(logits[target], attentions)
    return [a[0].detach() for a in attentions], [g[0] for g in gradients]


def reference_chefer(model, image, target):
    attentions, gradients = reference_gradients(model, image, target)
    n = attentions[0].shape[-1]
    relevance = torch.eye(n)
    for attention, gradient in zip(attentions, gradients):
        cam = torch.zeros(n, n)
        for head in range(attention.shape[0]):
            cam += torch.relu(gradient[head] * attention[head])
        relevance = relevance + (cam / attention.shape[0]) @ relevance
    return relevance[0, 1:]


def reference_gmar(model, image, target, norm="l1"):
    attentions, gradients = reference_gradients(model, image, target)
    fused_layers = []
    for attention, gradient in zip(attentions, gradients):
        if norm == "l1":
            strengths = [gradient[h].abs().sum() for h in range(gradient.shape[0])]
        else:
            strengths = [gradient[h].pow(2).sum().sqrt() for h in range(gradient.shape[0])]
        total = sum(strengths)
        fused_layers.append(sum(s / total * attention[h] for h, s in enumerate(strengths)))
    return reference_rollout_of(fused_layers)


def reference_legrad(model, image, target, layers=None):
    """Each layer's score from a copy of the model cut after that layer (its head reads it)."""
    num_layers = model.config.num_hidden_layers
    chosen = range(num_layers) if layers is None else layers
    maps = []
    for layer in chosen:
        truncated = copy.deepcopy(model)
        truncated.vit.layers = truncated.vit.layers[:layer + 1]
        logits, attentions = reference_forward(truncated, image)
        gradient, = torch.autograd.grad(logits[target], attentions[layer])
        maps.append(torch.relu(gradient[0]).mean(dim=0).mean(dim=0)[1:])
    return sum(maps) / len(maps)


REFERENCES = {
    "attention": (reference_attention, [{}, {"layer": 0, "head_fusion": "max"},
                                        {"layer": -2, "head_fusion": "min"}]),
    "rollout": (reference_rollout, [{}, {"head_fusion": "max", "discard_ratio": 0.3},
                                    {"head_fusion": "min", "discard_ratio": 0.9}]),
    "chefer": (reference_chefer, [{}]),
    "gmar": (reference_gmar, [{"norm": "l1"}, {"norm": "l2"}]),
    "legrad": (reference_legrad, [{}, {"layers": [0, 2]}]),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_method_matches_slow_reference(method, config):
    model = make_vit(config)
    pixel_values = images(model)
    targets = [1, 0, 4]
    reference, option_sets = REFERENCES[method]
    for options in option_sets:
        if config == "deit_like" and options.get("layers") == [0, 2]:
            options = {"layers": [1]}
        maps = explain(model, pixel_values, method, target=targets, **options)
        side = model.config.image_size // model.config.patch_size
        assert maps.shape == (3, side, side)
        for b, target in enumerate(targets):
            expected = reference(model, pixel_values[b], target, **options).reshape(side, side)
            assert_close(maps[b], expected, rtol=1e-4)


def test_reference_comparison_is_sensitive():
    """The references tell the methods apart: a wrong layer or target would be caught."""
    model = make_vit()
    pixel_values = images(model, batch=1)
    for method, (reference, _) in REFERENCES.items():
        maps = explain(model, pixel_values, method, target=1)[0].flatten()
        if method in ("attention", "rollout"):
            other = reference(model, pixel_values[0], 1, head_fusion="max")
        else:
            other = reference(model, pixel_values[0], 2)
        assert (maps - other).abs().max() > 1e-3 * other.abs().max(), method


# ---------------------------------------------------------------- the pure math on tensors
def random_attention(batch=2, heads=3, tokens=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, heads, tokens, tokens, generator=generator).mul(3).softmax(dim=-1)


@pytest.mark.parametrize("head_fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard_ratio", [0.0, 0.5])
def test_rollout_matrices_are_row_stochastic(head_fusion, discard_ratio):
    layers = [discard_lowest(fuse_heads(random_attention(seed=s), head_fusion), discard_ratio)
              for s in range(4)]
    for fused in layers:
        step = with_residual(fused)
        assert (step >= 0).all()
        torch.testing.assert_close(step.sum(dim=-1), torch.ones(2, 6))
    product = rollout_matrix(layers)
    assert (product >= 0).all()
    torch.testing.assert_close(product.sum(dim=-1), torch.ones(2, 6))


def test_rollout_of_identity_and_uniform_attention():
    tokens, layers = 5, 3
    identity = torch.eye(tokens).expand(2, tokens, tokens)
    torch.testing.assert_close(rollout_matrix([identity] * layers), identity)
    uniform = torch.full((2, tokens, tokens), 1 / tokens)
    cls_row = rollout_matrix([uniform] * layers)[:, 0, 1:]
    # (½U + ½I)^L = 2^-L I + (1 - 2^-L) U, because U² = U
    torch.testing.assert_close(cls_row, torch.full_like(cls_row, (1 - 2 ** -layers) / tokens))


def test_rollout_of_a_model_with_uniform_attention_is_uniform():
    """Zero query/key projections: every attention row is uniform, so is rollout's CLS row."""
    model = make_vit()
    with torch.no_grad():
        for layer in model.vit.layers:
            for projection in (layer.attention.q_proj, layer.attention.k_proj):
                projection.weight.zero_()
                projection.bias.zero_()
    maps = explain(model, images(model), "rollout")
    tokens, layers = 17, model.config.num_hidden_layers
    torch.testing.assert_close(maps, torch.full_like(maps, (1 - 2 ** -layers) / tokens))


def test_discard_counts_all_entries_and_spares_cls_to_cls():
    fused = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    fused[:, 0, 0] = 0.01  # the smallest entry, yet never discarded
    discarded = discard_lowest(fused, 0.5)
    zeroed = discarded == 0
    assert zeroed.flatten(1).sum(dim=1).tolist() == [8, 8]  # floor(0.5 * 16), not per row
    assert (discarded[:, 0, 0] == 0.01).all()
    torch.testing.assert_close(discarded[~zeroed], fused[~zeroed])
    candidates = fused.clone()
    candidates[:, 0, 0] = float("inf")
    largest_zeroed = fused.masked_fill(~zeroed, -1.0).flatten(1).amax(dim=1)
    smallest_kept = candidates.masked_fill(zeroed, float("inf")).flatten(1).amin(dim=1)
    assert (largest_zeroed < smallest_kept).all()
    torch.testing.assert_close(discard_lowest(fused, 0.0), fused)


def test_chefer_with_zero_gradients_gives_zero_patch_relevance():
    attention = random_attention()
    cams = [gradient_weighted_attention(attention, torch.zeros_like(attention))] * 3
    relevance = accumulate_relevance(cams)
    torch.testing.assert_close(relevance, torch.eye(6).expand(2, 6, 6))
    assert (relevance[:, 0, 1:] == 0).all()


def test_chefer_of_a_model_whose_logits_ignore_the_image_is_zero():
    model = make_vit()
    with torch.no_grad():
        model.classifier.weight.zero_()
    maps = explain(model, images(model), "chefer", target=2)
    assert (maps == 0).all()


def test_chefer_update_is_r_plus_cam_times_r():
    cams = [random_attention(heads=1, seed=s)[:, 0] for s in range(2)]
    expected = torch.eye(6) + cams[0]
    expected = expected + cams[1] @ expected
    torch.testing.assert_close(accumulate_relevance(cams), expected)


def test_gmar_with_equal_head_weights_is_mean_rollout():
    layers = [random_attention(seed=s) for s in range(3)]
    equal_gradients = torch.ones(2, 3, 6, 6)
    for norm in ("l1", "l2"):
        weights = head_weights(equal_gradients, norm)
        torch.testing.assert_close(weights, torch.full((2, 3), 1 / 3))
        weighted = rollout_matrix([weighted_heads(a, weights) for a in layers])
        torch.testing.assert_close(weighted, rollout_matrix([fuse_heads(a) for a in layers]))


def test_gmar_head_weights_follow_gradient_norms():
    gradient = torch.zeros(1, 2, 2, 2)
    gradient[0, 0] = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    gradient[0, 1] = torch.tensor([[-1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(head_weights(gradient, "l1"), torch.tensor([[7 / 8, 1 / 8]]))
    torch.testing.assert_close(head_weights(gradient, "l2"), torch.tensor([[5 / 6, 1 / 6]]))
    assert (head_weights(torch.zeros(1, 2, 2, 2)) == 0).all()


def test_legrad_layer_choices():
    assert layer_indices(None, 4) == [0, 1, 2, 3]
    assert layer_indices(slice(-2, None), 4) == [2, 3]
    assert layer_indices(-1, 4) == [3]
    assert layer_indices([0, -1], 4) == [0, 3]
    for bad, error in [(4, ValueError), ([], ValueError), (slice(5, None), ValueError),
                       ("last 2", TypeError), (1.5, TypeError)]:
        with pytest.raises(error):
            layer_indices(bad, 4)
    model = make_vit()
    x = images(model, batch=2)
    last_two = explain(model, x, "legrad", target=1, layers=slice(-2, None))
    singles = [explain(model, x, "legrad", target=1, layers=i) for i in (1, 2)]
    torch.testing.assert_close(last_two, (singles[0] + singles[1]) / 2)


# ---------------------------------------------------------------- the explain contract
@pytest.fixture(scope="module")
def tiny():
    model = make_vit()
    return model, images(model, batch=4, seed=3)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batch_equals_images_one_at_a_time(tiny, method):
    model, pixel_values = tiny
    batch = explain(model, pixel_values, method, target=[0, 3, 5, 3])
    alone = torch.cat([explain(model, pixel_values[b:b + 1], method, target=t)
                       for b, t in enumerate([0, 3, 5, 3])])
    assert_close(batch, alone, rtol=1e-5)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_target_none_is_the_predicted_class(tiny, method):
    model, pixel_values = tiny
    with torch.no_grad():
        predicted = model(pixel_values).logits.argmax(dim=-1)
    assert len(set(predicted.tolist())) > 1  # otherwise the test would be weak
    torch.testing.assert_close(explain(model, pixel_values, method),
                               explain(model, pixel_values, method, target=predicted))


@pytest.mark.parametrize("method", ["chefer", "gmar", "legrad"])
def test_target_int_list_tensor_agree_and_matter(tiny, method):
    model, pixel_values = tiny
    as_int = explain(model, pixel_values, method, target=2)
    for target in ([2, 2, 2, 2], (2, 2, 2, 2), torch.tensor([2, 2, 2, 2]), torch.tensor(2)):
        torch.testing.assert_close(explain(model, pixel_values, method, target=target), as_int)
    mixed = explain(model, pixel_values, method, target=[2, 6, 2, 6])
    torch.testing.assert_close(mixed[0::2], as_int[0::2])
    assert not torch.allclose(mixed[1::2], as_int[1::2])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_pixel_resolution(tiny, method):
    model, pixel_values = tiny
    pixels = explain(model, pixel_values[:2], method, target=1, resolution="pixel")
    assert pixels.shape == (2, 32, 32) and pixels.dtype == torch.float32
    assert not pixels.requires_grad
    if not getattr(METHODS[method], "native_pixel", False):
        patches = explain(model, pixel_values[:2], method, target=1)
        expected = F.interpolate(patches[:, None], size=(32, 32), mode="bilinear")[:, 0]
        torch.testing.assert_close(pixels, expected)


def test_works_in_a_callers_no_grad_block(tiny):
    model, pixel_values = tiny
    with torch.no_grad():
        inside = explain(model, pixel_values, "legrad", target=1)
        inside_chefer = explain(model, pixel_values, "chefer", target=1)
    torch.testing.assert_close(inside, explain(model, pixel_values, "legrad", target=1))
    torch.testing.assert_close(inside_chefer, explain(model, pixel_values, "chefer", target=1))


def test_frozen_parameters_still_work(tiny):
    model, pixel_values = tiny
    frozen = copy.deepcopy(model).requires_grad_(False)
    for method in ("chefer", "gmar", "legrad"):
        torch.testing.assert_close(explain(frozen, pixel_values, method, target=1),
                                   explain(model, pixel_values, method, target=1))


def test_vit_b16_geometry():
    """ViT-B/16's width, heads and 14x14 grid (two layers only, to stay fast)."""
    torch.manual_seed(0)
    model = ViTForImageClassification(
        ViTConfig(num_hidden_layers=2, num_labels=10, attn_implementation="eager")).eval()
    pixel_values = torch.randn(2, 3, 224, 224)
    for method in ("rollout", "chefer", "legrad"):
        maps = explain(model, pixel_values, method)
        assert maps.shape == (2, 14, 14) and torch.isfinite(maps).all()
    assert cls_attention_all(model, pixel_values).shape == (2, 2, 12, 14, 14)


def test_cls_attention_all_matches_attention(tiny):
    model, pixel_values = tiny
    maps = cls_attention_all(model, pixel_values)
    assert maps.shape == (4, 3, 4, 4, 4)
    torch.testing.assert_close(explain(model, pixel_values, "attention", layer=1),
                               maps[:, 1].mean(dim=1))
    torch.testing.assert_close(explain(model, pixel_values, "attention", layer=-1, head_fusion="max"),
                               maps[:, 2].amax(dim=1))


def test_no_side_effects_of_any_method():
    """After every method in turn: same outputs, same .grad, same flags, config, hooks."""
    model = make_vit()
    pixel_values = images(model, batch=2)
    model.train()
    model.vit.layers[0].eval()  # a mixed mode that must survive
    model(pixel_values).logits.square().sum().backward()
    model.vit.layers[1].attention.q_proj.weight.requires_grad_(False)
    before_outputs = model(pixel_values, output_attentions=True)
    before = {
        "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "modes": [m.training for m in model.modules()],
        "config": model.config.to_dict(),
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                  for m in model.modules()],
    }
    for method in METHODS:
        explain(model, pixel_values, method)
        explain(model, pixel_values, method, target=1, resolution="pixel")
    after_outputs = model(pixel_values, output_attentions=True)
    assert torch.equal(before_outputs.logits, after_outputs.logits)
    for a, b in zip(before_outputs.attentions, after_outputs.attentions):
        assert torch.equal(a, b)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == before["grads"].keys()
    assert all(torch.equal(grads[n], before["grads"][n]) for n in grads)
    assert all(torch.equal(p, before["params"][n]) for n, p in model.named_parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before["requires_grad"]
    assert [m.training for m in model.modules()] == before["modes"]
    assert model.config.to_dict() == before["config"]
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()] == before["hooks"]


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize("call, error, words", [
    (lambda m, x: explain(m, x[0], "rollout"), ValueError, "batch dimension"),
    (lambda m, x: explain(m, x[:, :1], "rollout"), ValueError, "channels"),
    (lambda m, x: explain(m, x[..., :16, :16], "rollout"), ValueError, "image processor"),
    (lambda m, x: explain(m, x.long(), "rollout"), TypeError, "floating point"),
    (lambda m, x: explain(m, x.numpy(), "rollout"), TypeError, "torch.Tensor"),
    (lambda m, x: explain(m, x, "chefer", target=7), ValueError, "[0, 7)"),
    (lambda m, x: explain(m, x, "chefer", target=[0, -1]), ValueError, "[0, 7)"),
    (lambda m, x: explain(m, x, "chefer", target=[0, 1, 2]), ValueError, "one class per image"),
    (lambda m, x: explain(m, x, "chefer", target=1.0), TypeError, "integer"),
    (lambda m, x: explain(m, x, "chefer", target=True), TypeError, "booleans"),
    (lambda m, x: explain(m, x, "gradcam"), ValueError, "choose one of"),
    (lambda m, x: explain(m, x, "rollout", head_fusion="median"), ValueError, "head_fusion"),
    (lambda m, x: explain(m, x, "rollout", discard_ratio=1.0), ValueError, "discard_ratio"),
    (lambda m, x: explain(m, x, "rollout", layer=1), TypeError, "head_fusion"),
    (lambda m, x: explain(m, x, "attention", layer=3), ValueError, "3-layer"),
    (lambda m, x: explain(m, x, "gmar", norm="l3"), ValueError, "norm"),
    (lambda m, x: explain(m, x, "legrad", layers=[5]), ValueError, "3-layer"),
    (lambda m, x: explain(m, x, "rollout", resolution="grid"), ValueError, "resolution"),
    (lambda m, x: explain(m.vit, x, "rollout"), TypeError, "ViTForImageClassification"),
])
def test_bad_inputs_give_clear_errors(call, error, words):
    model = make_vit()
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        call(model, images(model, batch=2))


def test_non_eager_attention_is_refused_with_the_fix():
    model = make_vit(attn_implementation="sdpa")
    with pytest.raises(ValueError, match='attn_implementation="eager"'):
        explain(model, images(model), "rollout")
    with pytest.raises(ValueError, match="helpers.load_model"):
        cls_attention_all(model, images(model))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_explanations_under_bf16_autocast_equal_float32(tiny, method):
    """The GPU path: a notebook on CUDA may call explain inside bf16 autocast. Rehearsed with CPU
    autocast: the maps are computed in float32 regardless, so they equal the plain ones."""
    model, pixel_values = tiny
    plain = explain(model, pixel_values, method, target=[0, 3, 5, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(pixel_values).logits.dtype == torch.bfloat16, "autocast must be active here"
        under_autocast = explain(model, pixel_values, method, target=[0, 3, 5, 3])
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, plain, rtol=0, atol=0)
