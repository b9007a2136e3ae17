# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Exercises: rollout, Chefer's rule, GMAR and LeGrad from scratch
#
# In notebook 03, `helpers.explain` computed these maps for you. Here you write the mathematics
# yourself, from a ViT's attention maps and their gradients, and compare with what you saw.
#
# **How this works.** Fill in every cell marked `# YOUR CODE HERE`, then run the
# `grader.check(...)` cell below it: it runs that question's *public* checks and tells you which
# fail. Your teacher grades with more checks (hidden, on other models and inputs), so passing the
# public checks is necessary, not sufficient: follow the formulas exactly. Write the code yourself:
# a function that calls into `helpers` loses the question's points (compare with `helpers` in a
# separate cell instead). The written question at the end is graded by hand.
#
# **Hand in** this notebook (`.ipynb`), saved after *Kernel → Restart & Run All*.
#
# **Shapes.** A ViT with `L` layers and `H` heads sees `N = 1 + h·w` tokens: token 0 is CLS, then the
# `h × w` patches row by row. Layer `l`'s attention `A_l` is `[B, H, N, N]` (post-softmax: every
# row sums to 1). All maps below are returned as `[B, N-1]`: the CLS row, CLS column dropped.

# %% [raw]
# # ASSIGNMENT CONFIG
# config_file: otter-config.yml
# name: 03_rollout_gmar_legrad

# %%
# Colab bootstrap: clone the course, install what Colab lacks (never torch). Elsewhere: nothing.
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/course"):
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/explaining-vits/vit-explain-course", "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "lxt==2.1"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "/content/course/requirements.txt"], check=True)
if "google.colab" in sys.modules:
    os.chdir("/content/course/notebooks")
    sys.path.insert(0, "/content/course")

# %%
# Otter-Grader: grader.check("name") runs a question's public checks. On Colab this cell first
# installs otter-grader and builds the checks from the course (about a minute).
from helpers.assignments import grader_for

grader = grader_for("03_rollout_gmar_legrad")

# %% [markdown]
# Inputs to try your code on: a tiny random ViT (2 layers, 3 heads, 32 px images in 8 px patches,
# so `N = 17`), two images, a target class for each, and — computed by `helpers` — every layer's
# attention and its gradient `∂y_t/∂A_l` (`y_t` the target's logit).

# %%
import torch

from helpers import fixtures

model, pixel_values, targets = fixtures.try_inputs()
attentions, gradients = fixtures.attentions_and_gradients(model, pixel_values, targets)
print(f"{len(attentions)} layers of attention {tuple(attentions[0].shape)}, "
      f"gradients {tuple(gradients[0].shape)}")

# %% [raw]
# # BEGIN QUESTION
# name: attention_gradients
# points: [1, 1]

# %% [markdown]
# ## Q1 · Attention maps and their gradients (2 points)
#
# Chefer's rule, GMAR and LeGrad need the gradient of the target logit with respect to every
# attention map. Write `attentions_and_gradients(model, pixel_values, targets)`:
#
# - one forward pass `model(pixel_values=..., output_attentions=True)`; the attention maps are
#   autograd tensors only if something upstream requires a gradient — use a copy of the images
#   that does (`pixel_values.detach().clone().requires_grad_(True)`);
# - the score `Σ_b logits[b, targets[b]]` (the logit, before the softmax; summing over the batch
#   is exact because image `b`'s logit depends on image `b` only);
# - `torch.autograd.grad(score, attentions)`.
#
# Return `(attentions, gradients)`: two lists of `L` tensors `[B, H, N, N]`, detached.

# %% [raw]
# # BEGIN SOLUTION

# %%
def attentions_and_gradients(model, pixel_values, targets):
    """Every layer's attention and the gradient of the summed target logits with respect to it."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    inputs = pixel_values.detach().clone().requires_grad_(True)
    outputs = model(pixel_values=inputs, output_attentions=True)
    score = outputs.logits.gather(1, targets[:, None]).sum()
    grads = torch.autograd.grad(score, outputs.attentions)
    return [a.detach() for a in outputs.attentions], [g.detach() for g in grads]
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_matches_helpers_on_the_try_inputs(attentions_and_gradients):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(attentions_and_gradients)
    model, pixel_values, targets = fixtures.try_inputs()
    expected = fixtures.attentions_and_gradients(model, pixel_values, targets)
    result = attentions_and_gradients(model, pixel_values, targets)
    assert isinstance(result, tuple) and len(result) == 2, "return (attentions, gradients)"
    for name, got, want in zip(("attentions", "gradients"), result, expected):
        assert len(got) == len(want), f"{name}: expected one tensor per layer ({len(want)})"
        for layer, (g, w) in enumerate(zip(got, want)):
            fixtures.assert_close(g, w, 1e-5, f"{name}[{layer}]")

test_matches_helpers_on_the_try_inputs(attentions_and_gradients)


# %%
# HIDDEN
def test_matches_helpers_on_another_model(attentions_and_gradients):
    import torch
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=5, layers=3, heads=2, image_size=40, hidden=16, labels=7)
    pixel_values, targets = fixtures.images(model, n=3, seed=6), torch.tensor([6, 0, 2])
    expected = fixtures.attentions_and_gradients(model, pixel_values, targets)
    got_attentions, got_gradients = attentions_and_gradients(model, pixel_values, targets)
    for layer in range(3):
        fixtures.assert_close(got_attentions[layer], expected[0][layer], 1e-5, f"attentions[{layer}]")
        fixtures.assert_close(got_gradients[layer], expected[1][layer], 1e-5, f"gradients[{layer}]")

test_matches_helpers_on_another_model(attentions_and_gradients)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: rollout
# points: [1, 1, 1, 1]

# %% [markdown]
# ## Q2 · Attention rollout (4 points)
#
# Abnar & Zuidema (2020) model each layer as half attention, half skip connection and multiply
# the layers. Write `rollout(attentions, head_fusion="mean", discard_ratio=0.0)`; per layer `l`:
#
# 1. fuse the heads: `Ā_l` = mean, max or min over the head axis → `[B, N, N]`;
# 2. if `discard_ratio > 0`: in each image's `Ā_l`, set the `floor(discard_ratio · N · N)`
#    smallest entries to 0 — the CLS→CLS entry `[0, 0]` is never one of them (entries equal to the
#    last one removed are removed too);
# 3. `Â_l = ½ Ā_l + ½ I`, then divide **each row by its own sum**;
#
# then `R = Â_L ⋯ Â_2 Â_1` (each new layer multiplies from the left) and return `R[:, 0, 1:]`.
#
# *Careful:* with mean fusion and nothing discarded, every row of `½ Ā + ½ I` already sums to 1,
# so a wrong normalisation goes unnoticed there. The reference code of the method
# (jacobgil/vit-explain) writes `a / a.sum(dim=-1)`, which divides entry `(i, j)` by row `j`'s
# sum: check yours with `head_fusion="max"`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def rollout(attentions, head_fusion="mean", discard_ratio=0.0):
    """Attention rollout's CLS row [B, N-1] from a list of [B, H, N, N] attention maps."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    relevance = None
    for attention in attentions:
        fused = {"mean": attention.mean(1), "max": attention.amax(1), "min": attention.amin(1)}[head_fusion]
        tokens = fused.shape[-1]
        count = int(discard_ratio * tokens * tokens)
        if count > 0:
            flat = fused.flatten(1).clone()
            candidates = flat.clone()
            candidates[:, 0] = torch.inf
            threshold = candidates.sort(dim=1).values[:, count - 1:count]
            fused = flat.masked_fill(candidates <= threshold, 0.0).view_as(fused)
        mixed = 0.5 * fused + 0.5 * torch.eye(tokens)
        step = mixed / mixed.sum(dim=-1, keepdim=True)
        relevance = step if relevance is None else step @ relevance
    return relevance[:, 0, 1:]
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_mean_fusion_on_the_try_inputs(rollout):
    import torch
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(rollout)
    model, pixel_values, targets = fixtures.try_inputs()
    attentions, _ = fixtures.attentions_and_gradients(model, pixel_values, targets)
    expected = helpers.explain(model, pixel_values, "rollout").flatten(1)
    fixtures.assert_close(rollout(attentions), expected, 1e-5, "rollout(attentions)")

test_mean_fusion_on_the_try_inputs(rollout)


# %%
# HIDDEN
def test_max_and_min_fusion_normalise_rows(rollout):
    import torch
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=11)
    pixel_values = fixtures.images(model, n=3, seed=12)
    attentions, _ = fixtures.attentions_and_gradients(model, pixel_values, torch.tensor([0, 1, 2]))
    for fusion in ("max", "min"):
        expected = helpers.explain(model, pixel_values, "rollout", head_fusion=fusion).flatten(1)
        fixtures.assert_close(rollout(attentions, head_fusion=fusion), expected, 1e-5,
                              f"rollout(..., head_fusion={fusion!r})")

test_max_and_min_fusion_normalise_rows(rollout)


# %%
# HIDDEN
def test_discard_ratio(rollout):
    import torch
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=13)
    pixel_values = fixtures.images(model, n=2, seed=14)
    attentions, _ = fixtures.attentions_and_gradients(model, pixel_values, torch.tensor([0, 4]))
    for fusion, ratio in (("mean", 0.5), ("max", 0.9), ("min", 0.3)):
        expected = helpers.explain(model, pixel_values, "rollout", head_fusion=fusion,
                                   discard_ratio=ratio).flatten(1)
        fixtures.assert_close(rollout(attentions, head_fusion=fusion, discard_ratio=ratio),
                              expected, 1e-5, f"rollout(..., {fusion!r}, discard_ratio={ratio})")

test_discard_ratio(rollout)


# %%
# HIDDEN
def test_deeper_model_other_grid(rollout):
    import torch
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=15, layers=4, heads=2, image_size=40, hidden=16)
    pixel_values = fixtures.images(model, n=2, seed=16)
    attentions, _ = fixtures.attentions_and_gradients(model, pixel_values, torch.tensor([1, 1]))
    expected = helpers.explain(model, pixel_values, "rollout", head_fusion="max",
                               discard_ratio=0.6).flatten(1)
    fixtures.assert_close(rollout(attentions, "max", 0.6), expected, 1e-5, "rollout on 4 layers")

test_deeper_model_other_grid(rollout)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: chefer
# points: [1, 2]

# %% [markdown]
# ## Q3 · Chefer's rule (3 points)
#
# Chefer, Gur & Wolf (ICCV 2021) weight every attention entry by its gradient, keep the positive
# part and accumulate layer by layer. Write `chefer(attentions, gradients)`:
#
# - `Ā_l = mean over heads of (∇A_l ⊙ A_l)⁺`, where `(·)⁺ = max(·, 0)` is taken *before* the mean;
# - `R = I` (`[B, N, N]`), then for `l = 1 … L` in forward order: `R ← R + Ā_l · R`;
# - return `R[:, 0, 1:]`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def chefer(attentions, gradients):
    """Chefer et al.'s relevance of each patch [B, N-1] from attention maps and their gradients."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    batch, _, tokens, _ = attentions[0].shape
    relevance = torch.eye(tokens).expand(batch, tokens, tokens)
    for attention, gradient in zip(attentions, gradients):
        weighted = (gradient * attention).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance[:, 0, 1:]
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_matches_helpers_on_the_try_inputs(chefer):
    import torch
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(chefer)
    model, pixel_values, targets = fixtures.try_inputs()
    attentions, gradients = fixtures.attentions_and_gradients(model, pixel_values, targets)
    expected = helpers.explain(model, pixel_values, "chefer", target=targets).flatten(1)
    fixtures.assert_close(chefer(attentions, gradients), expected, 1e-5, "chefer(...)")

test_matches_helpers_on_the_try_inputs(chefer)


# %%
# HIDDEN
def test_matches_helpers_on_other_models(chefer):
    import torch
    import helpers
    from helpers import fixtures
    for seed, shape in ((21, dict(layers=3, heads=4)), (22, dict(image_size=40, heads=2))):
        model = fixtures.tiny_vit(seed=seed, **shape)
        pixel_values = fixtures.images(model, n=3, seed=seed + 1)
        targets = torch.tensor([4, 0, 2])
        attentions, gradients = fixtures.attentions_and_gradients(model, pixel_values, targets)
        expected = helpers.explain(model, pixel_values, "chefer", target=targets).flatten(1)
        fixtures.assert_close(chefer(attentions, gradients), expected, 1e-5, f"chefer (model {seed})")

test_matches_helpers_on_other_models(chefer)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: gmar
# points: [1, 1, 1]

# %% [markdown]
# ## Q4 · GMAR: heads weighted by their gradients (3 points)
#
# GMAR (Jo et al. 2025) weights each head by how strongly the target logit responds to it, then
# rolls out. Write
#
# - `gmar_head_weights(gradient, norm="l1")`: for one layer's gradient `[B, H, N, N]`, each head's
#   strength `s_h = ‖∇A_h‖` — `"l1"`: the sum of the absolute entries, `"l2"`: the square root of
#   the sum of squares — divided by `Σ_h s_h`, so each image's weights sum to 1 → `[B, H]`. If every
#   `s_h` of an image is 0, its weights are all 0 (not NaN).
# - `gmar(attentions, gradients, norm="l1")`: per layer `Ā_l = Σ_h w_lh A_lh` with those weights,
#   then the rollout of Q2 on the `Ā_l` (no discarding) → `[B, N-1]`. You may call your `rollout`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def gmar_head_weights(gradient, norm="l1"):
    """Per-head weights [B, H] from one layer's attention gradient [B, H, N, N]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    if norm == "l1":
        strengths = gradient.abs().sum(dim=(-2, -1))
    else:
        strengths = gradient.pow(2).sum(dim=(-2, -1)).sqrt()
    total = strengths.sum(dim=1, keepdim=True)
    return torch.where(total > 0, strengths / total.clamp(min=1e-30), torch.zeros_like(strengths))
    # END SOLUTION


def gmar(attentions, gradients, norm="l1"):
    """GMAR's CLS row [B, N-1]: rollout of the head-weighted attention maps."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    weighted = [(gmar_head_weights(g, norm)[:, :, None, None] * a).sum(dim=1, keepdim=True)
                for a, g in zip(attentions, gradients)]
    return rollout(weighted, head_fusion="mean")
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_weights_are_a_distribution_over_heads(gmar_head_weights):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(gmar_head_weights)
    model = fixtures.tiny_vit(seed=0)
    _, gradients = fixtures.attentions_and_gradients(model, fixtures.images(model, n=2),
                                                     torch.tensor([1, 3]))
    for norm in ("l1", "l2"):
        weights = gmar_head_weights(gradients[0], norm)
        assert isinstance(weights, torch.Tensor) and weights.shape == (2, 3), \
            f"gmar_head_weights(gradients[0], {norm!r}) should have shape [B, H] = (2, 3)"
        assert torch.allclose(weights.sum(1), torch.ones(2), atol=1e-5), \
            "each image's head weights should sum to 1"

test_weights_are_a_distribution_over_heads(gmar_head_weights)


# %%
# HIDDEN
def test_weights_match_helpers(gmar_head_weights):
    import torch
    from helpers import fixtures
    from helpers.methods.gmar import head_weights
    model = fixtures.tiny_vit(seed=31, heads=4)
    _, gradients = fixtures.attentions_and_gradients(model, fixtures.images(model, n=3, seed=32),
                                                     torch.tensor([0, 2, 4]))
    for norm in ("l1", "l2"):
        for layer, gradient in enumerate(gradients):
            fixtures.assert_close(gmar_head_weights(gradient, norm), head_weights(gradient, norm),
                                  1e-5, f"weights ({norm}, layer {layer})")
    silent = torch.zeros(2, 4, 17, 17)
    assert torch.equal(gmar_head_weights(silent, "l1"), torch.zeros(2, 4)), \
        "all-zero gradients should give all-zero weights"

test_weights_match_helpers(gmar_head_weights)


# %%
# HIDDEN
def test_gmar_matches_helpers(gmar):
    import torch
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(gmar)
    model = fixtures.tiny_vit(seed=33, layers=3)
    pixel_values, targets = fixtures.images(model, n=2, seed=34), torch.tensor([3, 1])
    attentions, gradients = fixtures.attentions_and_gradients(model, pixel_values, targets)
    for norm in ("l1", "l2"):
        expected = helpers.explain(model, pixel_values, "gmar", target=targets, norm=norm).flatten(1)
        fixtures.assert_close(gmar(attentions, gradients, norm), expected, 1e-5, f"gmar ({norm})")

test_gmar_matches_helpers(gmar)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: legrad
# points: [1, 2]

# %% [markdown]
# ## Q5 · LeGrad (3 points)
#
# LeGrad (Bousselham et al. 2024) asks, layer by layer: had the model to decide now, which
# attention entries would its score be sensitive to? `fixtures.layer_gradients(model, pixel_values,
# targets)` gives you, for every layer `l`, `∂s_l/∂A_l` (`[B, H, N, N]`), where `s_l` is the
# classifier's score for the target read from layer `l`'s CLS token. Write
# `legrad(layer_gradients)`:
#
# - `E_l = ReLU(∂s_l/∂A_l)`, then the mean over heads **and** over all `N` query rows, CLS column
#   dropped → `[B, N-1]` (the ReLU comes first, on every entry);
# - return the mean of `E_l` over the layers.

# %%
layer_grads = fixtures.layer_gradients(model, pixel_values, targets)

# %% [raw]
# # BEGIN SOLUTION

# %%
def legrad(layer_gradients):
    """LeGrad's patch map [B, N-1] from the per-layer gradients ∂s_l/∂A_l."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    per_layer = [g.clamp(min=0).mean(dim=(1, 2))[:, 1:] for g in layer_gradients]
    return torch.stack(per_layer).mean(dim=0)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_matches_helpers_on_the_try_inputs(legrad):
    import torch
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(legrad)
    model, pixel_values, targets = fixtures.try_inputs()
    expected = helpers.explain(model, pixel_values, "legrad", target=targets).flatten(1)
    got = legrad(fixtures.layer_gradients(model, pixel_values, targets))
    fixtures.assert_close(got, expected, 1e-5, "legrad(layer_grads)")

test_matches_helpers_on_the_try_inputs(legrad)


# %%
# HIDDEN
def test_matches_helpers_on_another_model(legrad):
    import torch
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=41, layers=4, heads=4, image_size=40, hidden=32, labels=3)
    pixel_values, targets = fixtures.images(model, n=3, seed=42), torch.tensor([2, 0, 1])
    expected = helpers.explain(model, pixel_values, "legrad", target=targets).flatten(1)
    got = legrad(fixtures.layer_gradients(model, pixel_values, targets))
    fixtures.assert_close(got, expected, 1e-5, "legrad on a 4-layer model")

test_matches_helpers_on_another_model(legrad)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: methods_reading
# manual: true
# points: 3

# %% [markdown]
# ## Q6 · Reading the maps (3 points, graded by hand)
#
# The cell below explains the trained tiny model of the offline world on four hard scenes with
# `helpers.explain` (rollout, Chefer, GMAR, LeGrad), for the class the model predicts, and prints
# each method's *relevance mass on the object* (the share of its positive map that falls on the
# object mask) next to the object's *area share* (what a uniform map would score).
#
# In 4–8 sentences: (a) which method concentrates most on the object here, and what do you compare
# its relevance mass with to say whether that is better than chance? (b) Explaining another class
# than the predicted one would change Chefer's, GMAR's and LeGrad's maps but *not* rollout's: point
# to what in the formulas of Q2–Q5 makes this so. (c) What does that imply for explaining a
# *misclassification* with rollout?

# %% tags=["otter_ignore"]
# For the written question only (otter skips this cell when it grades).
import matplotlib.pyplot as plt

import helpers
from helpers import metrics, viz

trained = fixtures.trained_tiny_vit()
scene_pixels, scene_masks, scene_labels, class_names = fixtures.scenes(n=4, split="hard", seed=3)
with torch.no_grad():
    probabilities = trained(pixel_values=scene_pixels).logits.softmax(-1)
confidence, predicted = probabilities.max(-1)
method_maps = {name: helpers.explain(trained, scene_pixels, name, target=predicted)
               for name in ("rollout", "chefer", "gmar", "legrad")}
figure, _ = viz.heatmap_grid(
    scene_pixels, torch.stack(list(method_maps.values()), dim=1), list(method_maps),
    row_labels=[viz.sample_label(class_names[t], class_names[p], float(c))
                for t, p, c in zip(scene_labels, predicted, confidence)],
    title="Four hard scenes, each method for the predicted class")
plt.show()
for name, maps in method_maps.items():
    mass = metrics.relevance_mass(maps, scene_masks)
    print(f"{name:>8}: relevance mass on the object {mass.mean():.2f}")
print(f"    area: the object covers {scene_masks.float().mean():.2f} of the image")

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# **Model answer.** (a) The method with the largest relevance mass (typically Chefer on the trained
# tiny model) concentrates most; a mass is only informative next to the object's area share — a
# uniform map scores exactly the area share, so "better than chance" means a mass clearly above it
# (with four images, not by much: the interval is wide). (b) Rollout uses the attention maps only:
# `Ā_l` is a fusion of `A_l`, the target never enters, so the map is identical for every class.
# Chefer multiplies by `∇A_l = ∂y_t/∂A_l`, GMAR weights heads by the norm of that gradient and LeGrad
# takes `∂s_l/∂A_l` of the target's score: all three change with `t`. (c) Rollout cannot say why the
# model chose the wrong class over the right one: it shows where the CLS token reads, the same for
# both classes; a class-specific method (or the contrast of two targets) is needed.
#
# **Rubric (3 points).**
# - 1 pt (a): names the method with the highest printed mass *and* compares it with the area share
#   (not just "the highest number wins"). ½ pt if only one of the two.
# - 1 pt (b): rollout has no gradient / no target in its formula; the other three depend on
#   `∂(score of t)/∂A`. ½ pt for "rollout is class-agnostic" without saying why.
# - 1 pt (c): a class-agnostic map cannot separate the evidence for the predicted and the true
#   class. ½ pt for a vague but correct statement.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Before you hand in
#
# Run *Kernel → Restart & Run All*, check that every check above passes, answer the written
# question, save, and hand in this `.ipynb`.
