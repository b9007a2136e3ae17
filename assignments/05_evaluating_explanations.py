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
# # 05 · Exercises: measuring explanations
#
# In notebook 05, `helpers.metrics` scored every method for localisation and faithfulness. Here you
# write two of those metrics yourself: the pointing game and the deletion curve with its area.
#
# **How this works.** Fill in every cell marked `# YOUR CODE HERE`, then run the
# `grader.check(...)` cell below it: it runs that question's *public* checks and tells you which
# fail. Your teacher grades with more checks (hidden, on other models and inputs), so passing the
# public checks is necessary, not sufficient: follow the definitions exactly. Write the code
# yourself: a function that calls into `helpers` loses the question's points. The written question
# at the end is graded by hand.
#
# **Hand in** this notebook (`.ipynb`), saved after *Kernel → Restart & Run All*.

# %% [raw]
# # ASSIGNMENT CONFIG
# config_file: otter-config.yml
# name: 05_evaluating_explanations

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

grader = grader_for("05_evaluating_explanations")

# %% [markdown]
# Inputs to try your code on: four random maps on an 8 × 8 grid with object masks of 64 × 64
# pixels (each cell covers 8 × 8 pixels); and a tiny random ViT (32 px images, a 4 × 4 patch grid)
# with two images, a target class each and a random map for each image.

# %%
import torch

from helpers import fixtures

generator = torch.Generator().manual_seed(0)
maps = torch.rand(4, 8, 8, generator=generator)
masks = fixtures.random_masks(4, 64, seed=0)
model = fixtures.tiny_vit(seed=0)
pixel_values = fixtures.images(model, n=2)
targets = torch.tensor([1, 3])
patch_maps = torch.rand(2, 4, 4, generator=generator)
print(f"maps {tuple(maps.shape)}, masks {tuple(masks.shape)}, patch maps {tuple(patch_maps.shape)}")

# %% [raw]
# # BEGIN QUESTION
# name: pointing_game
# points: [1, 2, 1]

# %% [markdown]
# ## Q1 · The pointing game (4 points)
#
# Zhang et al. (2018): an explanation *points* with its maximum; it scores a hit if that point lies
# on the object, up to a tolerance (15 px at 224 px). A map cell covers a block of `H/h × W/w`
# pixels and cannot say where inside its block it points, so write
# `pointing_game(maps, masks, tolerance=15.0)` → a BoolTensor `[B]`:
#
# - a cell **hits** if some pixel of its block lies within `tolerance` pixels of some object pixel
#   (Euclidean distance between pixel coordinates `(row, column)`; `tolerance=0`: the block
#   overlaps the object);
# - an image is a hit if **every** cell that attains the map's maximum hits (so a flat map, all of
#   whose cells tie, only scores where every cell hits).
#
# Small sizes keep a brute-force distance computation fast enough (`torch.cdist`).

# %% [raw]
# # BEGIN SOLUTION

# %%
def pointing_game(maps, masks, tolerance=15.0):
    """Is each map's maximum (every tied cell) within `tolerance` px of the object? BoolTensor [B]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    _, rows, columns = maps.shape
    cell_h, cell_w = masks.shape[-2] // rows, masks.shape[-1] // columns
    hits = []
    for heatmap, mask in zip(maps, masks):
        object_pixels = mask.nonzero().double()
        hit = True
        for row, column in (heatmap == heatmap.max()).nonzero().tolist():
            block = torch.cartesian_prod(torch.arange(row * cell_h, (row + 1) * cell_h),
                                         torch.arange(column * cell_w, (column + 1) * cell_w))
            hit = hit and bool(torch.cdist(block.double(), object_pixels).min() <= tolerance)
        hits.append(hit)
    return torch.tensor(hits)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_a_small_example(pointing_game):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(pointing_game)
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 0, 0] = True                       # one object pixel, top-left corner
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.0]],     # points at the top-left cell: a hit
                         [[0.0, 0.0], [0.0, 1.0]]])    # bottom-right cell: 4√2 ≈ 5.7 px away
    for tolerance, expected in ((0.0, [True, False]), (5.0, [True, False]), (6.0, [True, True])):
        got = pointing_game(maps, masks, tolerance)
        assert isinstance(got, torch.Tensor) and got.tolist() == expected, (
            f"pointing_game(..., tolerance={tolerance}) should be {expected}, got "
            f"{got.tolist() if isinstance(got, torch.Tensor) else got!r}")

test_a_small_example(pointing_game)


# %%
# HIDDEN
def test_matches_helpers_with_tolerances(pointing_game):
    import torch
    from helpers import fixtures
    from helpers.metrics import pointing_game as reference
    generator = torch.Generator().manual_seed(81)
    maps = torch.rand(24, 8, 8, generator=generator)
    masks = fixtures.random_masks(24, 64, seed=82)
    for tolerance in (0.0, 3.0, 10.0):
        expected = reference(maps, masks, tolerance)
        got = pointing_game(maps, masks, tolerance)
        assert torch.equal(torch.as_tensor(got).bool(), expected), \
            f"tolerance {tolerance}: {int((torch.as_tensor(got).bool() != expected).sum())} of 24 images differ"

test_matches_helpers_with_tolerances(pointing_game)


# %%
# HIDDEN
def test_ties_must_all_hit(pointing_game):
    import torch
    from helpers import fixtures
    from helpers.metrics import pointing_game as reference
    masks = fixtures.random_masks(3, 64, seed=83)
    maps = torch.zeros(3, 8, 8)               # flat: every cell ties
    maps[1, 0, 0] = maps[1, 7, 7] = 1.0       # two tied maxima
    for tolerance in (0.0, 40.0):
        expected = reference(maps, masks, tolerance)
        assert torch.equal(torch.as_tensor(pointing_game(maps, masks, tolerance)).bool(), expected), \
            f"tied maxima (tolerance {tolerance}): an image is a hit only if every tied cell hits"

test_ties_must_all_hit(pointing_game)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: deletion
# points: [2, 2]

# %% [markdown]
# ## Q2 · The deletion curve and its area (4 points)
#
# Petsiuk et al. (2018): delete the cells a map ranks highest first and watch the target class's
# probability fall; a faithful map makes it fall fast (a small area under the curve). Write
#
# - `deletion_curve(model, pixel_values, maps, targets, steps)` → `[B, steps + 1]`: order each
#   image's `h·w` cells by its map, most relevant first (the maps have no ties); at step
#   `k = 0 … steps` the first `n_k = round(k · h·w / steps)` cells are deleted — their block of
#   pixels set to 0 in all channels (the baseline: mid-grey in the processor's normalised space);
#   the point is `softmax(model(pixel_values=…).logits)[target]` of the perturbed image (no
#   gradients needed). Step 0 is the clean image, the last step the all-zero one.
# - `area_under_curve(curves)` → `[B]`: the trapezoid area of each curve with its `steps + 1`
#   points evenly spaced over the fraction deleted, `0 … 1`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def deletion_curve(model, pixel_values, maps, targets, steps):
    """Target probability as the most relevant cells are set to 0, step by step: [B, steps + 1]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    batch, rows, columns = maps.shape
    cells = rows * columns
    cell_h, cell_w = pixel_values.shape[-2] // rows, pixel_values.shape[-1] // columns
    order = maps.flatten(1).argsort(dim=1, descending=True)
    points = []
    for k in range(steps + 1):
        keep = torch.ones(batch, cells)
        keep.scatter_(1, order[:, :round(k * cells / steps)], 0.0)
        keep = keep.view(batch, 1, rows, columns)
        keep = keep.repeat_interleave(cell_h, dim=2).repeat_interleave(cell_w, dim=3)
        with torch.no_grad():
            probabilities = model(pixel_values=pixel_values * keep).logits.softmax(dim=-1)
        points.append(probabilities.gather(1, targets[:, None])[:, 0])
    return torch.stack(points, dim=1)
    # END SOLUTION


def area_under_curve(curves):
    """Trapezoid area of each curve over evenly spaced fractions 0 … 1: [B]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    steps = curves.shape[1] - 1
    return ((curves[:, 1:] + curves[:, :-1]) / 2).sum(dim=1) / steps
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_curve_and_area_on_the_try_inputs(deletion_curve, area_under_curve):
    import torch
    from helpers import fixtures, metrics
    fixtures.assert_own_code(deletion_curve)
    fixtures.assert_own_code(area_under_curve)
    model = fixtures.tiny_vit(seed=0)
    pixel_values, targets = fixtures.images(model, n=2), torch.tensor([1, 3])
    patch_maps = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(5))
    expected = metrics.perturbation_curve(model, pixel_values, patch_maps, targets, "deletion",
                                          steps=4, baseline="zero")
    fixtures.assert_close(deletion_curve(model, pixel_values, patch_maps, targets, 4), expected,
                          1e-5, "deletion_curve(..., steps=4)")
    fixtures.assert_close(area_under_curve(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]])),
                          torch.tensor([0.25, 0.5]), 1e-6, "area_under_curve (trapezoids)")

test_curve_and_area_on_the_try_inputs(deletion_curve, area_under_curve)


# %%
# HIDDEN
def test_matches_helpers_on_another_model(deletion_curve, area_under_curve):
    import torch
    from helpers import fixtures, metrics
    model = fixtures.tiny_vit(seed=91, image_size=40, layers=3, labels=4)
    pixel_values, targets = fixtures.images(model, n=3, seed=92), torch.tensor([0, 3, 2])
    patch_maps = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(93))
    result = metrics.deletion_insertion(model, pixel_values, patch_maps, targets, steps=5)
    curves = deletion_curve(model, pixel_values, patch_maps, targets, 5)
    fixtures.assert_close(curves, result.deletion, 1e-5, "deletion_curve on a 5x5 grid")
    fixtures.assert_close(area_under_curve(curves), result.deletion_area, 1e-5, "its area")

test_matches_helpers_on_another_model(deletion_curve, area_under_curve)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: trust_reading
# manual: true
# points: 3

# %% [markdown]
# ## Q3 · Which explanation can we trust? (3 points, graded by hand)
#
# The cell below scores three methods and a random map on six hard scenes with the trained tiny
# model of the offline world, using `helpers.metrics`: pointing-game hits (and the rate a random
# map would reach), relevance mass on the object, and the deletion area (lower = the map found
# what the model needs). In 4–8 sentences: (a) which method would you trust to *localise* and
# which to be *faithful* — do the two kinds of metric agree? (b) Why is every number compared with
# a random map, and what do six images allow you to conclude? (c) Notebook 05 also ran a
# sanity check (cascading randomisation): what can a method get wrong that these metrics cannot
# see?

# %% tags=["otter_ignore"]
# For the written question only (otter skips this cell when it grades).
import pandas as pd

import helpers
from helpers import metrics

trained = fixtures.trained_tiny_vit()
scene_pixels, scene_masks, scene_labels, class_names = fixtures.scenes(n=6, split="hard", seed=4)
with torch.no_grad():
    predicted = trained(pixel_values=scene_pixels).logits.argmax(1)
scored = {name: helpers.explain(trained, scene_pixels, method, target=predicted, **options)
          for name, (method, options) in {"rollout": ("rollout", {}), "Chefer": ("chefer", {}),
                                          "AttnLRP (balanced)": ("attnlrp", {"preset": "balanced"})}.items()}
scored["random map"] = metrics.random_order_maps(scene_masks.shape[:1] + (14, 14), seed=0)
table = pd.DataFrame({name: {
    "pointing hits": float(metrics.pointing_game(m, scene_masks).float().mean()),
    "relevance mass": float(metrics.relevance_mass(m, scene_masks).mean()),
    "deletion area": float(metrics.area_under_curve(metrics.perturbation_curve(
        trained, scene_pixels, m, predicted, "deletion", steps=7)).mean()),
} for name, m in scored.items()}).T
print(f"a random map's pointing rate on these scenes: "
      f"{float(metrics.pointing_chance(scene_masks, (14, 14)).mean()):.2f}; the objects cover "
      f"{float(scene_masks.float().mean()):.2f} of the images")
table.round(3)

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# **Model answer.** (a) The method with the most pointing hits and relevance mass localises best
# (typically Chefer or AttnLRP on the tiny model); the one with the smallest deletion area is the
# most faithful. They need not agree: localisation asks whether the map matches a human mask,
# faithfulness whether the model's output depends on what the map ranks first — a model that uses
# context makes a faithful map look poorly localised. (b) A random map is the floor: a metric value
# means something only as a margin over it (pointing chance, area share, random deletion area).
# Six images give wide confidence intervals (a hit rate of 5/6 has a 95 % Wilson interval of
# roughly 0.44–0.97): enough to spot a method at chance, not to rank close methods; more images and
# intervals are needed. (c) A method can produce object-shaped maps that do not depend on the model
# (e.g. an edge detector, or rollout with max fusion in notebook 05): the randomisation test
# checks that the map changes when the weights are destroyed; localisation and even deletion can be
# good for a map that reflects the image rather than the model.
#
# **Rubric (3 points).**
# - 1 pt (a): reads the table (names a localisation winner and a faithfulness winner) and says
#   whether they agree, with a reason. ½ pt for reading the table without the distinction.
# - 1 pt (b): random map = chance floor, and a statement about the small sample (intervals, more
#   images). ½ pt for one of the two.
# - 1 pt (c): maps that do not depend on the model's parameters (or the image-only / edge-detector
#   argument). ½ pt for a vague "sanity".

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Before you hand in
#
# Run *Kernel → Restart & Run All*, check that every check above passes, answer the written
# question, save, and hand in this `.ipynb`.
