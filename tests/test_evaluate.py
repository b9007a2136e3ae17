"""helpers.evaluate: every variant run by one protocol, tidy scores, the results table.

A 2-layer random-weight ViT on 32 px images (a 4x4 patch grid) keeps the whole file fast.
"""
import copy
import math

import pandas as pd
import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification

from helpers import evaluate, explain, metrics
from helpers import methods
from helpers.methods import METHODS
from helpers.methods.attnlrp import PRESETS

SIZE, PATCH, GRID = 32, 8, 4


@pytest.fixture(scope="module")
def model():
    config = ViTConfig(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=5,
                       attn_implementation="eager")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ViTForImageClassification(config).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


FEW = {"attention": ("attention", {}), "chefer": ("chefer", {}),
       "attnlrp (balanced)": ("attnlrp", {"preset": "balanced"})}


def test_method_variants_cover_every_method_and_preset():
    variants = evaluate.method_variants()
    assert {method for method, _ in variants.values()} == set(METHODS)
    presets = {options["preset"] for method, options in variants.values() if method == "attnlrp"}
    assert presets == set(PRESETS) == set(evaluate.GAMMA_PRESETS)
    assert ("rollout", {"head_fusion": "max", "discard_ratio": 0.9}) in variants.values()
    assert len(evaluate.method_variants(presets=["none"], rollout_max_discard=None,
                                        full_attnlrp_presets=())) == 7


def test_lrp_variants_are_labelled_by_their_attention_rule():
    variants = evaluate.method_variants(presets=["none", "balanced"], full_attnlrp_presets=["balanced"])
    lrp = {label: options["variant"] for label, (method, options) in variants.items() if method == "attnlrp"}
    assert lrp == {"cp-lrp (none)": "cp", "cp-lrp (balanced)": "cp", "attnlrp (balanced)": "attnlrp"}


def test_explain_variants_match_explain_in_any_batch_size(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    maps = evaluate.explain_variants(model, images, targets, FEW, batch_size=2, progress=False)
    assert list(maps) == [*FEW, evaluate.RANDOM, evaluate.UNIFORM]
    for label, (method, options) in FEW.items():
        assert maps[label].shape == (5, GRID, GRID)
        direct = explain(model, images, method, target=targets, **options)
        torch.testing.assert_close(maps[label], direct, rtol=1e-4, atol=1e-6)
    assert torch.equal(maps[evaluate.RANDOM], metrics.random_order_maps((5, GRID, GRID), seed=0))
    assert (maps[evaluate.UNIFORM] == 1).all()


def test_explain_many_shares_one_forward_pass_and_gives_the_maps_of_explain(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    variants = [("attention", {"layer": 0, "head_fusion": "max"}), ("rollout", {"discard_ratio": 0.5}),
                ("chefer", {}), ("gmar", {"norm": "l1"}), ("gmar", {"norm": "l2"}), ("legrad", {})]
    passes = []  # forward passes through the model's embeddings
    hook = model.vit.embeddings.register_forward_hook(lambda *args: passes.append(1))
    try:
        together = methods.explain_many(model, images, variants, targets)
        shared_and_legrad = len(passes)
        explain(model, images, "legrad", target=targets)
    finally:
        hook.remove()
    assert shared_and_legrad == 1 + (len(passes) - shared_and_legrad)  # one pass for the other five
    separate = [explain(model, images, method, target=targets, **options) for method, options in variants]
    for (method, options), a, b in zip(variants, together, separate):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=f"{method} {options}")
    with pytest.raises(TypeError, match="does not take"):
        methods.explain_many(model, images, [("chefer", {"norm": "l1"})], targets)


def test_lrp_variants_differing_in_conv_gamma_share_one_pass_and_give_the_maps_of_explain(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    variants = [("attnlrp", {"conv_gamma": conv, "lin_gamma": lin}) for conv in (0.1, None, 100.0)
                for lin in (0.05, 1.0)]
    variants += [("attnlrp", {"preset": "aggressive"}), ("attnlrp", {"preset": "balanced", "variant": "attnlrp"})]
    passes = []
    hook = model.vit.embeddings.register_forward_hook(lambda *args: passes.append(1))
    try:
        together = methods.explain_many(model, images, variants, targets)
    finally:
        hook.remove()
    # lin γ 0.05: one pass for 3 conv γ; lin γ 1.0: one for 3 conv γ and the aggressive preset (10, 1);
    # full AttnLRP alone
    assert len(passes) == 3
    for (method, options), a in zip(variants, together):
        assert torch.equal(a, explain(model, images, method, target=targets, **options)), options
    assert not torch.equal(together[0], together[2])  # conv γ does change the maps


def test_explain_variants_reuse_cached_maps_by_model_image_target_and_options(model, images, tmp_path,
                                                                            monkeypatch):
    targets = torch.tensor([0, 1, 2, 3, 4])
    ids = [f"image{i}" for i in range(5)]
    rollouts = {"mean": ("rollout", {"head_fusion": "mean"}), "max": ("rollout", {"head_fusion": "max"})}
    first = evaluate.explain_variants(model, images, targets, rollouts, batch_size=2, progress=False,
                                      ids=ids, cache=tmp_path)
    assert not torch.equal(first["mean"], first["max"])  # options are part of the key
    calls = []  # the targets of each batch explained
    real = methods.explain_many
    monkeypatch.setattr(methods, "explain_many", lambda m, x, v, t: calls.append(t) or real(m, x, v, t))
    again = evaluate.explain_variants(model, images[[4, 1]], targets[[4, 1]], rollouts, references=False,
                                      progress=False, ids=[ids[4], ids[1]], cache=tmp_path)
    assert not calls  # read back, not recomputed
    assert torch.equal(again["mean"], first["mean"][[4, 1]]) and torch.equal(again["max"], first["max"][[4, 1]])
    chefer = {"chefer": ("chefer", {})}
    evaluate.explain_variants(model, images, targets, chefer, progress=False, ids=ids, cache=tmp_path)
    calls.clear()
    other = evaluate.explain_variants(model, images, (targets + 1) % 5, chefer, references=False,
                                      progress=False, ids=ids, cache=tmp_path)
    assert sum(map(len, calls)) == 5  # another target: another map
    torch.testing.assert_close(other["chefer"], explain(model, images, "chefer", target=(targets + 1) % 5))
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.vit.embeddings.cls_token += 1.0  # the head is unchanged: the whole model is the key
    calls.clear()
    evaluate.explain_variants(changed, images, targets, chefer, progress=False, ids=ids, cache=tmp_path)
    assert sum(map(len, calls)) == 5
    with pytest.raises(ValueError, match="ids and cache"):
        evaluate.explain_variants(model, images, targets, chefer, ids=ids)


def test_cache_keys_name_what_a_map_depends_on(model, tmp_path):
    from helpers.map_cache import variant_file

    def key(method, **options):
        return variant_file(tmp_path, model, method, options, fingerprint="f")

    assert key("rollout") == key("rollout", head_fusion="mean", discard_ratio=0.0)  # the defaults
    assert key("rollout", head_fusion="max") != key("rollout")
    assert key("attnlrp", preset="very_aggressive") == key("attnlrp", conv_gamma=100, lin_gamma=1.0, variant="cp")
    assert key("attnlrp", preset="balanced") != key("attnlrp", preset="balanced", variant="attnlrp")
    assert key("attnlrp", conv_gamma=0.1, lin_gamma=1.0) != key("attnlrp", conv_gamma=100, lin_gamma=1.0)
    assert key("gmar", norm="l1") != key("gmar", norm="l2") and key("gmar") != key("chefer")


def test_localisation_scores_known_answers():
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[:, :PATCH, :PATCH] = True  # the object fills the top-left patch
    on_object = torch.zeros(2, GRID, GRID)
    on_object[:, 0, 0] = 1.0
    far_away = torch.zeros(2, GRID, GRID)
    far_away[:, -1, -1] = 1.0
    maps = {"on": on_object, "far": far_away, evaluate.UNIFORM: torch.ones(2, GRID, GRID)}
    scores = evaluate.localisation_scores(maps, masks, tolerance=0).set_index(["variant", "image"])
    assert scores.loc["on", "pointing"].all() and scores.loc["on", "mass"].eq(1).all()
    assert not scores.loc["far", "pointing"].any() and scores.loc["far", "mass"].eq(0).all()
    uniform = scores.loc[evaluate.UNIFORM]
    assert uniform["mass"].to_numpy() == pytest.approx(uniform["area"].to_numpy())
    assert uniform["area"].to_numpy() == pytest.approx([1 / 16, 1 / 16])


def test_predicted_targets_follow_the_masked_protocol(model, images):
    with torch.no_grad():
        logits = model(pixel_values=images).logits
    head = [4, 1, 3]
    masked = evaluate.predicted_targets(model, images, head_indices=head, batch_size=2)
    assert masked.tolist() == [head[i] for i in logits[:, head].argmax(-1).tolist()]
    assert evaluate.predicted_targets(model, images).tolist() == logits.argmax(-1).tolist()


def test_faithfulness_restricts_the_softmax_to_the_dataset_classes(model, images):
    head = [4, 1, 3]
    targets = evaluate.predicted_targets(model, images, head_indices=head)
    maps = {"random": metrics.random_order_maps((5, GRID, GRID), seed=3)}
    areas, curves = evaluate.faithfulness_scores(model, images, targets, maps, steps=4,
                                                 head_indices=head)

    def restricted(x):
        return model(pixel_values=x).logits[:, head]

    positions = torch.tensor([head.index(int(t)) for t in targets])
    expected = metrics.deletion_insertion(restricted, images, maps["random"], positions, steps=4)
    assert areas["deletion"].to_numpy() == pytest.approx(expected.deletion_area.numpy(), abs=1e-6)
    assert areas["insertion"].to_numpy() == pytest.approx(expected.insertion_area.numpy(), abs=1e-6)
    mean_deletion = curves.query("mode == 'deletion'")["probability"].to_numpy()
    assert mean_deletion == pytest.approx(expected.deletion.mean(0).numpy(), abs=1e-6)
    assert len(curves) == 2 * 5  # two modes x (steps + 1) points


def test_faithfulness_scores_the_clean_and_baseline_images_once_for_every_map(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    maps = {f"random {s}": metrics.random_order_maps((5, GRID, GRID), seed=s) for s in range(3)}
    scored = []  # images per forward pass of the scoring copy
    real_copy = evaluate.scoring_copy

    def counting_copy(m):
        fast = real_copy(m)
        fast.register_forward_pre_hook(lambda module, args, kwargs: scored.append(len(kwargs.get("pixel_values", args[0] if args else None))), with_kwargs=True)
        return fast

    evaluate.scoring_copy = counting_copy
    try:
        areas, _ = evaluate.faithfulness_scores(model, images, targets, maps, steps=4)
    finally:
        evaluate.scoring_copy = real_copy
    assert sum(scored) == 5 * 2 + len(maps) * 2 * 5 * (4 - 1)  # ends once, inner points per map and mode
    for label, m in maps.items():
        expected = metrics.deletion_insertion(model, images, m, targets, steps=4)
        got = areas[areas["variant"] == label]
        assert got["deletion"].to_numpy() == pytest.approx(expected.deletion_area.numpy(), abs=1e-5)


def test_faithfulness_is_scored_with_fused_attention_on_a_copy(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    maps = {"chefer": explain(model, images, "chefer", target=targets)}
    areas, _ = evaluate.faithfulness_scores(model, images, targets, maps, steps=4)
    expected = metrics.deletion_insertion(model, images, maps["chefer"], targets, steps=4)  # eager
    assert areas["deletion"].to_numpy() == pytest.approx(expected.deletion_area.numpy(), abs=1e-5)
    assert areas["insertion"].to_numpy() == pytest.approx(expected.insertion_area.numpy(), abs=1e-5)
    fast = evaluate.scoring_copy(model)
    assert fast.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "eager"  # the explained model keeps its attention maps
    with torch.no_grad():
        assert len(model(pixel_values=images, output_attentions=True).attentions) == 2
        torch.testing.assert_close(fast(pixel_values=images).logits, model(pixel_values=images).logits,
                                   rtol=1e-5, atol=1e-5)


def test_sanity_scores_class_agnostic_attention_ignores_the_head(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    scores = evaluate.sanity_scores(model, images, targets, FEW, progress=False)
    n_stages = len(metrics.randomization_stages(model))
    assert len(scores) == len(FEW) * n_stages * len(images)
    assert scores["rho"].between(-1 - 1e-6, 1 + 1e-6).all()
    head_stage = scores.query("step == 1").set_index("variant")
    assert (head_stage.loc["attention", "stage"] == "head").all()
    assert head_stage.loc["attention", "rho"].to_numpy() == pytest.approx(1.0)  # no head involved
    assert head_stage.loc["chefer", "rho"].mean() < 0.999  # the gradient comes through the head
    # the original maps, when given, are not explained again and give the same correlations
    maps = evaluate.explain_variants(model, images, targets, FEW, references=False, progress=False)
    given = evaluate.sanity_scores(model, images, targets, FEW, progress=False, maps=maps)
    assert given[["rho", "rho_abs"]].to_numpy() == pytest.approx(scores[["rho", "rho_abs"]].to_numpy(), abs=1e-5)
    shuffled = evaluate.sanity_scores(model, images, targets, {"chefer": FEW["chefer"]}, progress=False,
                                      maps={"chefer": maps["chefer"].flip(0)})  # the wrong originals
    assert shuffled["rho"].to_numpy() != pytest.approx(scores.query("variant == 'chefer'")["rho"].to_numpy(), abs=1e-3)


def test_sanity_scores_absolute_ranks_the_magnitude(model, images):
    targets = torch.tensor([0, 1, 2, 3, 4])
    scores = evaluate.sanity_scores(model, images, targets, FEW, progress=False)
    signed, absolute = (scores.set_index(["variant", "step", "image"])[column] for column in ("rho", "rho_abs"))
    assert absolute["attention"].to_numpy() == pytest.approx(signed["attention"].to_numpy())  # maps >= 0
    assert absolute["attnlrp (balanced)"].to_numpy() != pytest.approx(signed["attnlrp (balanced)"].to_numpy())
    # the magnitudes' rho is the paper's second reading, as metrics computes it on its own
    method, options = FEW["attnlrp (balanced)"]
    direct = metrics.cascading_randomization(
        model, lambda m, x, t: explain(m, x, method, target=t, **options), images, targets, absolute=True)
    expected = torch.stack([rho for _, rho in direct], 0).flatten().numpy()
    assert absolute["attnlrp (balanced)"].to_numpy() == pytest.approx(expected, abs=1e-6)


def test_bench_costs_in_forward_passes_by_canonical_options():
    header = ["method", "variant", "implementation", "floor", "batch", "threads", "ratio", "seconds_per_image"]
    costs = pd.DataFrame([
        ("attention", "", "helpers", "forward", 8, 1, 1.1, 0.22),  # forward: 0.2 s an image
        ("rollout", "discard_ratio=0.9 head_fusion=max", "helpers", "forward", 8, 1, 1.5, 0.30),
        ("rollout", "", "helpers", "forward", 8, 1, 1.2, 0.24),
        ("chefer", "", "helpers", "forward+backward", 8, 1, 1.2, 0.60),
        ("chefer", "", "helpers", "forward+backward", 1, 1, 1.2, 9.99),  # another batch size
        ("attnlrp", "preset=balanced", "helpers", "forward+backward", 8, 1, 1.7, 0.80),
        ("attnlrp", "preset=balanced", "lxt", "forward+backward", 8, 1, 2.3, 1.20),  # a peer
    ], columns=header)
    variants = evaluate.method_variants(presets=["balanced"], full_attnlrp_presets=["balanced"])
    cost = evaluate.bench_costs(variants, costs).set_index("variant")["cost"]
    assert cost["attention"] == pytest.approx(1.1) and cost["chefer"] == pytest.approx(3.0)
    assert cost["rollout (max, discard 0.9)"] == pytest.approx(1.5)  # options in another order
    assert cost["cp-lrp (balanced)"] == pytest.approx(4.0)  # cp is attnlrp's default variant
    assert cost["rollout (mean)"] == pytest.approx(1.2)  # mean fusion is rollout's default
    assert math.isnan(cost["attnlrp (balanced)"])  # full AttnLRP: not benchmarked here
    assert math.isnan(cost["gmar (l2)"])  # not benchmarked
    with pytest.raises(ValueError, match="make bench"):
        evaluate.bench_costs(variants, costs, batch=64)


def test_results_table_aggregates_with_intervals():
    localisation = pd.DataFrame({"variant": ["a"] * 4 + ["b"] * 4, "image": list(range(4)) * 2,
                                 "pointing": [True, True, True, False, False] + [False] * 3,
                                 "mass": [0.5, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4]})
    sanity = pd.DataFrame({"variant": ["a"] * 4, "step": [1, 1, 2, 2], "stage": ["head"] * 2 + ["x"] * 2,
                           "image": [0, 1, 0, 1], "rho": [1.0, 0.8, 0.2, 0.0]})
    cost = pd.DataFrame({"variant": ["b", "a"], "cost": [2.0, 1.0]})
    table = evaluate.results_table(localisation, sanity=sanity, cost=cost)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "pointing"] == 0.75 and table.loc["b", "pointing"] == 0.0
    assert (table.loc["a", "pointing_lo"], table.loc["a", "pointing_hi"]) == pytest.approx(
        metrics.wilson_interval(3, 4)[1:])
    assert table.loc["a", "mass"] == 0.5 and table.loc["a", "mass_lo"] == table.loc["a", "mass_hi"]
    assert table.loc["a", "rho_head"] == pytest.approx(0.9)
    assert table.loc["a", "rho_final"] == pytest.approx(0.1)
    assert math.isnan(table.loc["b", "rho_final"]) and table.loc["b", "cost"] == 2.0
    shown = evaluate.formatted(table)
    assert shown.loc["a", "pointing game"].startswith("0.75 [") and shown.loc["b", "sanity ρ (final)"] == ""
    assert not any(column.endswith(("_lo", "_hi")) for column in shown.columns)


def test_intervals_contain_the_mean_at_zero_and_all_hits():
    # 17 trials: round-off puts the raw Wilson bounds just inside 0 and 1
    scores = pd.DataFrame({"variant": ["none"] * 17 + ["all"] * 17 + ["equal"] * 17,
                           "pointing": [False] * 17 + [True] * 17 + [True] * 17,
                           "mass": [0.0] * 17 + [1.0] * 17 + [0.1] * 17})
    for column in ("pointing", "mass"):
        table = evaluate.mean_ci(scores, column)
        assert (table[f"{column}_lo"] <= table[column]).all() and (table[column] <= table[f"{column}_hi"]).all()
    assert evaluate.mean_ci(scores, "pointing").loc["none", "pointing_hi"] > 0.1  # Wilson, not degenerate
