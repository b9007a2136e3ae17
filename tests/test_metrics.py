"""Known answers for helpers.metrics: localisation, uncertainty, faithfulness, sanity, cost.

Models are tiny random-weight HF ViTs (32 px, patch 8, a 4x4 grid) or a callable whose target
probability is, by construction, a weighted count of the patches still present.
"""
import time

import pytest
import torch
import torch.nn.functional as F
from transformers import ViTConfig, ViTForImageClassification

from helpers import metrics

PATCH, SIZE = 8, 32
GRID = SIZE // PATCH


def tiny_vit(seed=0, num_labels=5):
    """A 2-layer random-weight ViT on 32 px images (4x4 patches), eval mode."""
    config = ViTConfig(
        image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=num_labels,
        attn_implementation="eager",
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ViTForImageClassification(config).eval()


def random_boxes(batch, size=SIZE, seed=0):
    """Boolean masks [B, size, size], one random rectangle each."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, size, size, dtype=torch.bool)
    for mask in masks:
        top, left = torch.randint(0, size - 8, (2,), generator=generator).tolist()
        height, width = torch.randint(3, 9, (2,), generator=generator).tolist()
        mask[top:top + height, left:left + width] = True
    return masks


def patch_aligned_masks():
    """Two masks made of whole 8x8 patches, and the same masks on the 4x4 patch grid."""
    grid = torch.zeros(2, GRID, GRID, dtype=torch.bool)
    grid[0, 1:3, 1:3] = True
    grid[1, 0, 3] = True
    pixels = grid.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)
    return grid, pixels


# ----------------------------------------------------------------------------- localisation


def test_perfect_map_scores_one_and_anti_map_zero_at_pixel_level():
    masks = random_boxes(8)
    perfect, anti = masks.float(), (~masks).float()
    assert metrics.pointing_game(perfect, masks, tolerance=0).all()
    assert torch.allclose(metrics.relevance_mass(perfect, masks), torch.ones(8))
    assert not metrics.pointing_game(anti, masks, tolerance=0).any()
    assert torch.equal(metrics.relevance_mass(anti, masks), torch.zeros(8))


def test_perfect_map_scores_one_and_anti_map_zero_on_the_patch_grid():
    grid, pixels = patch_aligned_masks()
    assert metrics.pointing_game(grid.float(), pixels, tolerance=0).all()
    assert torch.allclose(metrics.relevance_mass(grid.float(), pixels), torch.ones(2))
    assert not metrics.pointing_game((~grid).float(), pixels, tolerance=0).any()
    assert torch.equal(metrics.relevance_mass((~grid).float(), pixels), torch.zeros(2))


def test_pointing_game_tolerance_follows_zhang_at_224_px():
    """16 px patches, 15 px tolerance: the patch holding the object pixel is a hit, so is its
    neighbour (1 px away; a miss without tolerance), the patch after (17 px away) is not."""
    mask = torch.zeros(1, 224, 224, dtype=torch.bool)
    mask[0, 100, 111] = True  # the last column of patch (6, 6), which spans pixels 96..111
    for column, tolerance, hit in [(6, 0, True), (7, 0, False), (7, 15, True), (8, 15, False)]:
        patch_map = torch.zeros(1, 14, 14)
        patch_map[0, 6, column] = 1.0
        assert metrics.pointing_game(patch_map, mask, tolerance).item() is hit, (column, tolerance)
    pixel_map = torch.zeros(1, 224, 224)
    pixel_map[0, 100, 126] = 1.0  # exactly 15 px away
    assert metrics.pointing_game(pixel_map, mask).item()
    assert not metrics.pointing_game(pixel_map, mask, tolerance=14.9).item()


def test_pointing_game_gives_flat_maps_nothing_and_rejects_empty_masks():
    masks = random_boxes(3)
    assert not metrics.pointing_game(torch.ones(3, GRID, GRID), masks, tolerance=0).any()
    with pytest.raises(ValueError, match="object pixel"):
        metrics.pointing_game(torch.rand(1, GRID, GRID), torch.zeros(1, SIZE, SIZE, dtype=torch.bool))


def test_pointing_chance_is_the_hit_rate_of_a_map_peaking_at_each_cell_in_turn():
    masks = random_boxes(3, seed=3)
    one_hot = torch.eye(GRID * GRID).view(-1, GRID, GRID)  # every cell is the maximum once
    for tolerance in (0.0, 5.0):
        chance = metrics.pointing_chance(masks, (GRID, GRID), tolerance)
        for mask, rate in zip(masks, chance):
            hits = metrics.pointing_game(one_hot, mask.expand(len(one_hot), -1, -1), tolerance)
            assert rate.item() == hits.float().mean().item(), tolerance
    wider, exact = (metrics.pointing_chance(masks, (GRID, GRID), t) for t in (5.0, 0.0))
    assert (wider > exact).any()  # the tolerance was exercised


def test_pointing_chance_known_values():
    _, pixels = patch_aligned_masks()  # a 2x2 block of patches in the middle; a corner patch
    expected = {0: [4 / 16, 1 / 16], 1: [12 / 16, 3 / 16], 1.5: [1.0, 4 / 16]}
    # 1 px reaches the edge neighbours (a diagonal neighbour is sqrt(2) px away), 1.5 px all of them
    for tolerance, rates in expected.items():
        chance = metrics.pointing_chance(pixels, (GRID, GRID), tolerance)
        assert torch.equal(chance, torch.tensor(rates)), tolerance
    with pytest.raises(ValueError, match="object pixel"):
        metrics.pointing_chance(torch.zeros(1, SIZE, SIZE, dtype=torch.bool), (GRID, GRID))


def test_relevance_mass_counts_positive_relevance_only():
    masks = random_boxes(4)
    signed = torch.where(masks, 1.0, -5.0)  # all positive mass on the object
    assert torch.allclose(metrics.relevance_mass(signed, masks), torch.ones(4))
    assert torch.equal(metrics.relevance_mass(-masks.float(), masks), torch.zeros(4))


def test_relevance_mass_on_patches_equals_pixels_of_the_upsampled_map():
    masks = random_boxes(6, seed=1)  # not aligned with patches
    patch_maps = torch.randn(6, GRID, GRID, generator=torch.Generator().manual_seed(2))
    pixel_maps = patch_maps.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)
    patch_level = metrics.relevance_mass(patch_maps, masks)
    assert torch.allclose(patch_level, metrics.relevance_mass(pixel_maps, masks), atol=1e-6)
    assert ((patch_level > 0) & (patch_level < 1)).any()  # the fractional case was exercised


def test_maps_must_tile_the_image():
    with pytest.raises(ValueError, match="does not tile"):
        metrics.relevance_mass(torch.rand(1, 5, 5), random_boxes(1))


# ----------------------------------------------------------------------------- uncertainty


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_values():
    values = torch.randn(2000, generator=torch.Generator().manual_seed(0)) + 3.0
    widths = []
    for n in (20, 2000):
        mean, lo, hi = metrics.bootstrap_ci(values[:n])
        assert lo < mean < hi
        assert mean == pytest.approx(values[:n].double().mean().item())
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 5  # ~ 1/sqrt(n): 10x narrower expected
    assert 2.9 < lo < 3.0 < hi < 3.1  # the last interval covers the true mean, 3
    assert metrics.bootstrap_ci(values[:50], seed=1) == metrics.bootstrap_ci(values[:50], seed=1)


def test_wilson_interval_known_values():
    p, lo, hi = metrics.bootstrap_ci(torch.zeros(10, dtype=torch.bool))
    assert p == 0.0 and lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-5)  # 0.2775
    p, lo, hi = metrics.wilson_interval(5, 10)
    assert p == 0.5 and lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)


# ----------------------------------------------------------------------------- faithfulness


class PatchEvidenceModel(torch.nn.Module):
    """Two classes; p(class 0) = sum_c weight_c * (mean pixel of cell c), per image.

    On all-ones images with a zero baseline a cell's mean is 1 if present and 0 if deleted, so the
    target probability is exactly the weight of the cells still present.
    """

    def __init__(self, weights):  # [B, h, w], each summing to 1
        super().__init__()
        self.weights = weights

    def forward(self, pixel_values, image_index):
        presence = F.avg_pool2d(pixel_values.mean(1, keepdim=True), PATCH)[:, 0]
        p = (presence * self.weights[image_index]).flatten(1).sum(1).clamp(1e-9, 1 - 1e-9)
        return torch.stack([p.log(), (1 - p).log()], 1)


def curves_on_evidence_model(weights, maps, steps=GRID * GRID):
    """Deletion/insertion on PatchEvidenceModel, image by image (the model needs its weights)."""
    results = []
    for i in range(weights.shape[0]):
        model = lambda x, i=i: PatchEvidenceModel(weights)(x, i)
        results.append(metrics.deletion_insertion(
            model, torch.ones(1, 3, SIZE, SIZE), maps[i:i + 1], 0, steps=steps, baseline="zero"))
    return {key: torch.cat([getattr(r, key) for r in results])
            for key in ("deletion", "insertion", "deletion_area", "insertion_area")}


def test_map_on_the_one_patch_that_matters_has_far_lower_deletion_area_than_random():
    batch, cells = 16, GRID * GRID
    important = torch.randint(cells, (batch,), generator=torch.Generator().manual_seed(0))
    weights = F.one_hot(important, cells).float().view(batch, GRID, GRID)
    perfect = curves_on_evidence_model(weights, weights)
    random = curves_on_evidence_model(weights, metrics.random_order_maps((batch, GRID, GRID), seed=1))
    # perfect: the curve falls from 1 to 0 at the first step, area = half a step
    assert torch.allclose(perfect["deletion_area"], torch.full((batch,), 0.5 / cells), atol=1e-6)
    assert torch.allclose(perfect["insertion_area"], torch.full((batch,), 1 - 0.5 / cells), atol=1e-6)
    assert random["deletion_area"].mean() > max(0.3, 10 * perfect["deletion_area"].mean())


def test_random_maps_score_the_random_order_expectation():
    """For an additive model, E[deletion area] under a random order is exactly 1/2, and deletion +
    insertion = 1 for any order."""
    batch = 48
    with torch.random.fork_rng():
        torch.manual_seed(4)
        weights = torch.distributions.Dirichlet(torch.ones(GRID * GRID)).sample((batch,))
    weights = weights.view(batch, GRID, GRID)
    areas = torch.cat([
        curves_on_evidence_model(weights, metrics.random_order_maps((batch, GRID, GRID), seed=s),
                                 steps=8)["deletion_area"]
        for s in range(3)
    ])
    mean, lo, hi = metrics.bootstrap_ci(areas)
    assert lo < 0.5 < hi and hi - lo < 0.1
    noise = torch.randn(batch, GRID, GRID, generator=torch.Generator().manual_seed(9))  # another random map
    other = curves_on_evidence_model(weights, noise, steps=8)
    assert torch.allclose(other["deletion_area"] + other["insertion_area"], torch.ones(batch), atol=1e-5)
    assert abs(other["deletion_area"].mean() - 0.5) < 0.1
    assert torch.allclose(other["deletion"] + other["insertion"], torch.ones(batch, 9), atol=1e-5)


def test_curve_end_points_chunking_and_no_side_effects_on_a_vit():
    model = tiny_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    maps, targets = torch.rand(3, GRID, GRID), torch.tensor([0, 3, 4])
    result = metrics.deletion_insertion(model, x, maps, targets, steps=4, baseline="blur", batch_size=4)
    with torch.no_grad():
        clean = model(x).logits.softmax(-1)[range(3), targets]
        blurred = model(metrics.baseline_image(x, "blur")).logits.softmax(-1)[range(3), targets]
    assert result.deletion.shape == result.insertion.shape == (3, 5)
    assert torch.allclose(result.deletion[:, 0], clean, atol=1e-6)
    assert torch.allclose(result.deletion[:, -1], blurred, atol=1e-6)
    assert torch.allclose(result.insertion[:, 0], blurred, atol=1e-6)
    assert torch.allclose(result.insertion[:, -1], clean, atol=1e-6)
    assert torch.allclose(result.fractions, torch.linspace(0, 1, 5))
    one_at_a_time = metrics.deletion_insertion(model, x, maps, targets, steps=4, baseline="blur", batch_size=1)
    assert torch.allclose(one_at_a_time.deletion, result.deletion, atol=1e-6)
    predicted = model(x).logits.argmax(-1)
    by_prediction = metrics.perturbation_curve(model, x, maps, None, steps=4)
    assert torch.allclose(by_prediction, metrics.perturbation_curve(model, x, maps, predicted, steps=4))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_given_end_points_replace_the_first_and_last_points_only():
    model = tiny_vit()
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    maps, targets = torch.rand(3, GRID, GRID), torch.tensor([0, 3, 4])
    ends = metrics.end_probabilities(model, x, targets, "blur")
    full = metrics.deletion_insertion(model, x, maps, targets, steps=4, baseline="blur")
    torch.testing.assert_close(ends, torch.stack([full.deletion[:, 0], full.deletion[:, -1]], 1))
    marked = torch.tensor([[0.25, 0.75]]).repeat(3, 1)  # not a model output: shows they are used
    for mode, first, last in (("deletion", 0.25, 0.75), ("insertion", 0.75, 0.25)):
        curve = metrics.perturbation_curve(model, x, maps, targets, mode, steps=4, baseline="blur", ends=marked)
        assert (curve[:, 0] == first).all() and (curve[:, -1] == last).all()
        torch.testing.assert_close(curve[:, 1:-1], getattr(full, mode)[:, 1:-1])
    with pytest.raises(ValueError, match="ends"):
        metrics.perturbation_curve(model, x, maps, targets, steps=4, ends=marked[:2])


def test_curves_assembled_at_the_patch_embedding_equal_those_built_in_pixels():
    model = tiny_vit()
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    maps, targets = torch.rand(3, GRID, GRID), torch.tensor([0, 3, 4])
    conv = model.vit.embeddings.patch_embeddings.projection
    for mode in ("deletion", "insertion"):
        pixels = metrics.perturbation_curve(model, x, maps, targets, mode, steps=4, baseline="blur")
        embedded = metrics.perturbation_curve(model, x, maps, targets, mode, steps=4, baseline="blur",
                                              patch_embedding=conv, batch_size=5)
        torch.testing.assert_close(embedded, pixels, rtol=1e-5, atol=1e-6)
    assert "forward" not in conv.__dict__  # the convolution's own forward is back
    with pytest.raises(ValueError, match="patch_embedding"):
        metrics.perturbation_curve(model, x, torch.rand(3, 2, 2), targets, steps=2, patch_embedding=conv)


class CountingModel(torch.nn.Module):
    """``model``'s logits, counting the images it scores."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, pixel_values):
        self.images += len(pixel_values)
        return self.model(pixel_values).logits


def test_several_maps_give_each_map_its_own_curve_and_score_shared_images_once():
    model = CountingModel(tiny_vit())
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 3, 4])
    ranked = torch.rand(3, GRID, GRID, generator=torch.Generator().manual_seed(1))
    flat = torch.zeros(3, GRID, GRID)  # ties everywhere: broken per map with the seed, as alone
    stacked = torch.stack([ranked, flat, ranked, -ranked])
    for mode in ("deletion", "insertion"):
        together = metrics.perturbation_curve(model, x, stacked, targets, mode, steps=4, batch_size=5)
        assert together.shape == (4, 3, 5)
        for v, maps in enumerate(stacked):
            alone = metrics.perturbation_curve(model, x, maps, targets, mode, steps=4, batch_size=5)
            assert torch.equal(together[v], alone)
    result = metrics.deletion_insertion(model, x, stacked, targets, steps=4)
    assert result.deletion_area.shape == (4, 3)
    assert torch.equal(result.deletion_area[3], metrics.deletion_insertion(model, x, -ranked, targets, steps=4).deletion_area)
    model.images = 0
    metrics.perturbation_curve(model, x, ranked, targets, steps=4)
    one_map = model.images
    model.images = 0
    metrics.perturbation_curve(model, x, torch.stack([ranked, ranked.clone()]), targets, steps=4)
    assert model.images == one_map  # the same perturbed images: scored once
    model.images = 0
    metrics.perturbation_curve(model, x, torch.stack([ranked, -ranked]), targets, steps=4)
    assert model.images == 2 * one_map - 2 * len(x)  # the two orders share only the clean and baseline images


def test_ties_are_broken_at_random_not_row_major():
    rank = metrics.relevance_rank(torch.zeros(1, GRID, GRID), seed=0)
    assert sorted(rank[0].tolist()) == list(range(GRID * GRID))
    assert not torch.equal(rank[0], torch.arange(GRID * GRID))
    strict = metrics.relevance_rank(torch.arange(16.0).view(1, GRID, GRID))
    assert torch.equal(strict[0], torch.arange(15, -1, -1))  # largest value first


def test_perturbation_rejects_more_steps_than_cells():
    with pytest.raises(ValueError, match="steps"):
        metrics.perturbation_curve(tiny_vit(), torch.zeros(1, 3, SIZE, SIZE), torch.rand(1, GRID, GRID), 0, steps=17)


# ----------------------------------------------------------------------------- sanity checks


def gradient_map(model, pixel_values, targets):
    """|d logit_target / d x| summed over channels, averaged per patch: depends on the model."""
    pixel_values = pixel_values.clone().requires_grad_(True)
    logits = model(pixel_values).logits.gather(1, targets[:, None]).sum()
    (gradient,) = torch.autograd.grad(logits, pixel_values)
    return F.avg_pool2d(gradient.abs().sum(1, keepdim=True), PATCH)[:, 0]


def edge_map(model, pixel_values, targets):
    """Vertical intensity differences per patch: ignores the model entirely."""
    edges = (pixel_values[..., 1:, :] - pixel_values[..., :-1, :]).abs().sum(1, keepdim=True)
    return F.avg_pool2d(F.pad(edges, (0, 0, 0, 1)), PATCH)[:, 0]


def test_a_map_that_ignores_the_model_fails_the_sanity_check_and_a_gradient_map_passes():
    model = tiny_vit()
    x = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    edge = metrics.cascading_randomization(model, edge_map, x)
    gradient = metrics.cascading_randomization(model, gradient_map, x)
    names = ["head", "layer 2", "layer 1", "embeddings"]
    assert [name for name, _ in edge] == [name for name, _ in gradient] == names
    assert all(torch.allclose(rho, torch.ones(6)) for _, rho in edge)
    assert gradient[-1][1].mean() < 0.5
    assert gradient[-1][1].mean() < gradient[0][1].mean()


def test_cascading_randomization_leaves_the_model_and_global_rng_untouched():
    model = tiny_vit()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits = model(x).logits
    with torch.random.fork_rng():
        torch.manual_seed(1234)  # a global state no stage seed could reproduce by chance
        rng = torch.get_rng_state()
        metrics.cascading_randomization(model, gradient_map, x, targets=[1, 2], absolute=True)
        assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(x).logits, logits)
    assert not model.training


def test_randomization_cascades_from_the_top_and_keeps_the_targets():
    model = tiny_vit()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted = model(x).logits.argmax(-1)
    seen = []

    def block(key):  # "classifier", "vit.layernorm", "vit.layers.1", "vit.embeddings"
        parts = key.split(".")
        return ".".join(parts[:3] if parts[1] == "layers" else parts[:2]) if parts[0] == "vit" else parts[0]

    def recording_map(copy, pixel_values, targets):
        changed = {block(k) for k, v in copy.state_dict().items() if not torch.equal(v, original[k])}
        seen.append((changed, targets.clone()))
        return gradient_map(copy, pixel_values, targets)

    metrics.cascading_randomization(model, recording_map, x)
    changed = [c for c, _ in seen]
    assert changed[0] == set()  # the original map comes from an untouched copy
    # the final LayerNorm is re-initialised too, but a random model's is already at its init
    assert changed[1] - {"vit.layernorm"} == {"classifier"}
    assert changed[2] - changed[1] == {"vit.layers.1"}
    assert changed[3] - changed[2] == {"vit.layers.0"}
    assert changed[4] - changed[3] == {"vit.embeddings"}
    assert all(a <= b for a, b in zip(changed, changed[1:]))  # cumulative
    assert all(torch.equal(t, predicted) for _, t in seen)


def test_spearman_matches_the_definition_with_ties():
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0]])
    b = torch.tensor([[10.0, 20.0, 20.0, 30.0], [1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(metrics.spearman_per_image(a, b), torch.tensor([1.0, -1.0], dtype=torch.float64))
    # ranks [0, 1.5, 1.5, 3] vs [0, 1, 2, 3]: Pearson = 4.5 / sqrt(4.5 * 5)
    rho = metrics.spearman_per_image(a[:1], torch.arange(4.0)[None])
    assert rho.item() == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
