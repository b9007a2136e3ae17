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
# # 02 · Exercises: reading attention maps
#
# In notebook 02, `helpers` drew the CLS token's attention for every layer and head and measured
# how much of it lands on the object. Here you compute both yourself from the raw attention tensors.
#
# **How this works.** Fill in every cell marked `# YOUR CODE HERE`, then run the
# `grader.check(...)` cell below it: it runs that question's *public* checks and tells you which
# fail. Your teacher grades with more checks (hidden, on other models and inputs), so passing the
# public checks is necessary, not sufficient: follow the definitions exactly. Write the code
# yourself: a function that calls into `helpers` loses the question's points. The written question
# at the end is graded by hand.
#
# **Hand in** this notebook (`.ipynb`), saved after *Kernel → Restart & Run All*.
#
# **Shapes.** A ViT with `L` layers and `H` heads sees `N = 1 + h·w` tokens: token 0 is CLS, then the
# `h × w` patches row by row. Layer `l`'s attention `A_l` is `[B, H, N, N]`; row `i` says how much
# token `i` reads from every token (post-softmax: every row sums to 1).

# %% [raw]
# # ASSIGNMENT CONFIG
# config_file: otter-config.yml
# name: 02_attention_maps

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

grader = grader_for("02_attention_maps")

# %% [markdown]
# Inputs to try your code on: a tiny random ViT (2 layers, 3 heads, 32 px images in 8 px patches:
# a 4 × 4 grid, `N = 17`), two images and every layer's attention.

# %%
import torch

from helpers import fixtures

model = fixtures.tiny_vit(seed=0)
pixel_values = fixtures.images(model, n=2)
attentions = fixtures.attentions(model, pixel_values)
print(f"{len(attentions)} layers of attention {tuple(attentions[0].shape)}")

# %% [raw]
# # BEGIN QUESTION
# name: cls_attention
# points: [1, 2]

# %% [markdown]
# ## Q1 · The CLS token's attention (3 points)
#
# The classifier reads the CLS token, so the first thing to look at is where CLS reads from. Write
# `cls_attention(attentions, layer=-1, head_fusion="mean")`:
#
# - take layer `layer`'s attention (negative numbers count from the last layer, as in Python);
# - keep the row of the CLS token *without* its CLS column → `[B, H, N-1]`: how much CLS reads from
#   each patch;
# - fuse the heads by their mean, max or min → `[B, N-1]`;
# - reshape to the patch grid → `[B, h, w]` (`h = w = √(N−1)`).

# %% [raw]
# # BEGIN SOLUTION

# %%
def cls_attention(attentions, layer=-1, head_fusion="mean"):
    """CLS→patch attention of one layer, heads fused, on the patch grid: [B, h, w]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    cls_rows = attentions[layer][:, :, 0, 1:]
    fused = {"mean": cls_rows.mean(1), "max": cls_rows.amax(1), "min": cls_rows.amin(1)}[head_fusion]
    side = round(fused.shape[-1] ** 0.5)
    return fused.reshape(fused.shape[0], side, side)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_last_layer_mean_on_the_try_inputs(cls_attention):
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(cls_attention)
    model = fixtures.tiny_vit(seed=0)
    pixel_values = fixtures.images(model, n=2)
    expected = helpers.explain(model, pixel_values, "attention")
    got = cls_attention(fixtures.attentions(model, pixel_values))
    fixtures.assert_close(got, expected, 1e-6, "cls_attention(attentions)")

test_last_layer_mean_on_the_try_inputs(cls_attention)


# %%
# HIDDEN
def test_every_layer_and_fusion_on_another_model(cls_attention):
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=51, layers=3, heads=4, image_size=40)
    pixel_values = fixtures.images(model, n=3, seed=52)
    attentions = fixtures.attentions(model, pixel_values)
    for layer in (0, 1, -1):
        for fusion in ("mean", "max", "min"):
            expected = helpers.explain(model, pixel_values, "attention", layer=layer,
                                       head_fusion=fusion)
            fixtures.assert_close(cls_attention(attentions, layer, fusion), expected, 1e-6,
                                  f"cls_attention(attentions, {layer}, {fusion!r})")

test_every_layer_and_fusion_on_another_model(cls_attention)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: object_share
# points: [1, 2]

# %% [markdown]
# ## Q2 · How much attention lands on the object? (3 points)
#
# The offline scenes come with a mask of the object, so we can measure where a map puts its mass.
# Write `attention_on_object(maps, masks)`:
#
# - `maps`: `[B, h, w]`, non-negative (e.g. your CLS attention); `masks`: `[B, H, W]` booleans, the
#   object's pixels, with `H = h · p` (each map cell covers a `p × p` block of pixels);
# - each cell counts with the **fraction** of its block's pixels that lie inside the mask (a cell
#   half on the object counts half — not "any pixel" and not "the centre pixel");
# - return, per image, `Σ_c fraction_c · map_c / Σ_c map_c` → `[B]`.
#
# A uniform map scores exactly the object's area share: that is the number to beat.

# %% [raw]
# # BEGIN SOLUTION

# %%
def attention_on_object(maps, masks):
    """Share of each map's mass on the object, cells weighted by their pixel fraction: [B]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    cell = masks.shape[-1] // maps.shape[-1]
    fraction = torch.nn.functional.avg_pool2d(masks[:, None].float(), cell)[:, 0]
    return (maps * fraction).flatten(1).sum(1) / maps.flatten(1).sum(1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_a_small_example(attention_on_object):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(attention_on_object)
    maps = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True   # the top-left cell entirely on the object
    masks[0, 2:, 2] = True    # half of the bottom-right cell
    share = attention_on_object(maps, masks)
    fixtures.assert_close(share, torch.tensor([0.75]), 1e-6,
                          "attention_on_object (one full cell and one half cell)")

test_a_small_example(attention_on_object)


# %%
# HIDDEN
def test_matches_helpers_relevance_mass(attention_on_object):
    import torch
    from helpers import fixtures
    from helpers.metrics import relevance_mass
    generator = torch.Generator().manual_seed(61)
    for grid, size in ((8, 64), (14, 224)):
        maps = torch.rand(6, grid, grid, generator=generator) ** 3
        masks = fixtures.random_masks(6, size, seed=grid)
        fixtures.assert_close(attention_on_object(maps, masks), relevance_mass(maps, masks), 1e-5,
                              f"attention_on_object on a {grid}x{grid} grid")

test_matches_helpers_relevance_mass(attention_on_object)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: layers_reading
# manual: true
# points: 3

# %% [markdown]
# ## Q3 · Reading attention layer by layer (3 points, graded by hand)
#
# The cell below shows the trained tiny model of the offline world on three hard scenes: the CLS
# attention of each of its layers (mean over heads, computed by `helpers`), and per layer the
# share of that attention on the object next to the object's area share. In 4–8 sentences:
# (a) in which layers does CLS attention concentrate on the object, by the figure *and* by the
# numbers? (b) Give two reasons why a patch with high CLS attention in one layer need not be what
# the prediction depends on. (c) Which one measurement would you add to tell "attention is on the
# object" from "the object causes the prediction"?

# %% tags=["otter_ignore"]
# For the written question only (otter skips this cell when it grades).
import matplotlib.pyplot as plt

import helpers
from helpers import metrics, viz

trained = fixtures.trained_tiny_vit()
scene_pixels, scene_masks, scene_labels, class_names = fixtures.scenes(n=3, split="hard", seed=1)
layer_maps = torch.stack([helpers.explain(trained, scene_pixels, "attention", layer=layer)
                          for layer in range(trained.config.num_hidden_layers)], dim=1)
with torch.no_grad():
    probabilities = trained(pixel_values=scene_pixels).logits.softmax(-1)
confidence, predicted = probabilities.max(-1)
figure, _ = viz.heatmap_grid(
    scene_pixels, layer_maps, [f"layer {layer}" for layer in range(layer_maps.shape[1])],
    row_labels=[viz.sample_label(class_names[t], class_names[p], float(c))
                for t, p, c in zip(scene_labels, predicted, confidence)],
    title="CLS attention per layer (mean over heads), three hard scenes")
plt.show()
for layer in range(layer_maps.shape[1]):
    share = metrics.relevance_mass(layer_maps[:, layer], scene_masks)
    print(f"layer {layer}: attention on the object {share.mean():.2f}")
print(f"area:    the object covers {scene_masks.float().mean():.2f} of the image")

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# **Model answer.** (a) Early layers spread CLS attention almost uniformly (a share close to the
# area share); the last layer(s) concentrate on the object (a share several times the area
# share), which the figure shows as bright patches on the shape. (b) Attention weights say how much
# CLS *reads* from a token, not how much that token changes the logit: the value vectors can be
# small or point away from the class; tokens are already mixtures of other patches after the first
# layer, so "patch 12" in layer 3 carries information from elsewhere; the residual stream bypasses
# attention; several heads disagree and the mean hides it. (c) A causal or gradient-based test:
# e.g. delete the object's patches and measure the drop of the class probability (notebook 05's
# deletion curve), or a gradient-weighted method (Chefer, notebook 03).
#
# **Rubric (3 points).**
# - 1 pt (a): names the layer(s) where the printed share clearly exceeds the area share, consistent
#   with the figure. ½ pt if only the figure or only the numbers are used.
# - 1 pt (b): two valid reasons (values/gradients not in the weights, token mixing across layers,
#   residual path, head disagreement). ½ pt for one.
# - 1 pt (c): an intervention or gradient-based measurement tied to the prediction. ½ pt for a
#   vague "check faithfulness".

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Before you hand in
#
# Run *Kernel → Restart & Run All*, check that every check above passes, answer the written
# question, save, and hand in this `.ipynb`.
