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
# # 02 · Attention maps, layer by layer and head by head
#
# A ViT classifies from its CLS token, and in every layer each head decides, by softmax attention,
# which patches the CLS token reads from. Those weights are the first thing anyone plots to "see
# where the model looks". This notebook plots them carefully and asks how far they can be trusted.
#
# **What you will learn**
#
# - how to read the CLS → patch attention of every layer and head (`cls_attention_all`);
# - how attention changes with depth: the mean attention distance (Dosovitskiy et al. 2021, Fig. 7)
#   and the entropy of the CLS attention;
# - how the attention of correct and incorrect predictions compares, early and late;
# - offline, where object masks exist: whether last-layer attention actually falls on the object.
#
# *Where this sits:* notebook 01 classified the dataset and chose the samples explained here;
# notebook 03 turns raw attention into class-specific explanations (rollout, Chefer, GMAR, LeGrad).

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

# %% tags=["parameters"]
import os

import torch

WORLD = os.environ.get("COURSE_WORLD", "auto")  # "auto" | "real" | "offline"
DATA_DIR = os.environ.get("COURSE_DATA_DIR")  # ImageNet-A and the caches (None: the repo's data/)
CI = os.environ.get("COURSE_SCALE", "full") == "ci"  # small, fast run (tests)
SEED = 0
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
N_PER_CLASS = 8 if CI else None  # used only if notebook 01's selection is missing
N_CORRECT, N_INCORRECT = 4, 4  # as in notebook 01
N_LOCALISATION_PER_CLASS = 8 if CI else 50  # standard scenes for the localisation check (offline)
HEAD_FUSION = "mean"  # how heads are combined in the per-layer figures: mean | max | min

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import helpers
from helpers import evaluate as E
from helpers import metrics
from helpers import predict as P
from helpers import viz
from helpers.backbones import adapter_for
from helpers.methods.attention import cls_attention_all, fuse_heads

helpers.set_data_dir(DATA_DIR)
world = helpers.resolve_world(WORLD)
torch.manual_seed(SEED)
model, processor = helpers.load_model(world=world, device=DEVICE)
n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads

# %% [markdown]
# ## The selected samples
#
# The correct and incorrect predictions chosen in notebook 01 (recomputed here if that notebook has
# not run).

# %%
rows, pixel_values, dataset, predicted, true_label, is_correct, labels = P.selected_samples(
    model, processor, world, N_CORRECT, N_INCORRECT, SEED, N_PER_CLASS)  # checked: this model's
grid = adapter_for(model).grid(pixel_values)  # (rows, columns) of patches: (14, 14) at 224 px, 16 px patches
rows[["id", "group", "class_name", "pred_name", "confidence"]].round(3)

# %% [markdown]
# ## CLS attention of every layer and head
#
# In layer `l`, head `h` has a post-softmax attention matrix `A[l, h]` over the `N = 1 + 196`
# tokens. Its first row, without the first column, `A[l, h, 0, 1:]`, says how much the CLS token
# reads from each of the 14 × 14 patches (the rest, `A[l, h, 0, 0]`, it reads from itself).
# `cls_attention_all` returns all of them at once: `[images, layers, heads, 14, 14]`.

# %%
attention = cls_attention_all(model, pixel_values.to(DEVICE)).cpu()
print("attention maps:", tuple(attention.shape))
assert attention.shape == (len(rows), n_layers, n_heads, *grid)
patch_share = attention.sum((-2, -1))  # the CLS row's mass on patches (the rest is on CLS itself)
assert ((patch_share > 0) & (patch_share <= 1 + 1e-5)).all()
print(f"share of CLS attention on patches (not on CLS itself): {patch_share.mean():.2f} on average, "
      f"per layer {[round(float(s), 2) for s in patch_share.mean((0, 2))]}")

# %% [markdown]
# One incorrect prediction, all layers (rows) × all heads (columns). Each panel is normalised on
# its own (min → dark, max → bright), so the panels show *where* each head reads, not how much.

# %%
sample = int(np.flatnonzero(rows["group"] == "incorrect")[0])
cell = 1.1 if n_layers * n_heads > 64 else 1.6
fig, axes = viz.heatmap_grid(pixel_values[sample].expand(n_layers, -1, -1, -1), attention[sample],
                             [f"head {h + 1}" for h in range(n_heads)],
                             row_labels=[f"layer {l + 1}" for l in range(n_layers)],
                             image_column=False, cell=cell,
                             title=f"CLS attention per layer and head ({labels[sample].replace(chr(10), ', ')})")
viz.save(fig, "02_layers_heads_grid")
plt.show()

# %% [markdown]
# Heads fused (`HEAD_FUSION`), every layer, every selected sample: correct predictions first, then
# the incorrect ones.

# %%
fused = fuse_heads(attention.flatten(0, 1), HEAD_FUSION).unflatten(0, attention.shape[:2])
layers_shown = range(n_layers) if n_layers <= 6 else np.unique(np.linspace(0, n_layers - 1, 6).round().astype(int))
fig, axes = viz.heatmap_grid(pixel_values, fused[:, list(layers_shown)],
                             [f"layer {l + 1}" for l in layers_shown], row_labels=labels,
                             title=f"CLS attention, heads fused by {HEAD_FUSION}")
viz.save(fig, "02_cls_attention_per_layer")
plt.show()

# %% [markdown]
# ## How far do heads look? Attention distance and entropy
#
# Dosovitskiy et al. (2021, Fig. 7) measure, per head, the **mean attention distance**: for each
# query patch `q`, the attention-weighted average distance in pixels to the patches it attends to,
# averaged over query patches,
#
# `d = mean_q Σ_k A[q, k] · ‖x_q − x_k‖ / Σ_k A[q, k]`   (patches only: CLS row and column left out).
#
# Small `d` is a local, convolution-like head; large `d` a global one. A head that attends evenly to
# all patches scores the mean distance between two patch centres (the dashed line below); the
# converse does not hold: a head that splits its attention between a few far-apart patches scores
# as high, so a large `d` says "far", not "evenly". Dosovitskiy et al. plot `d` for ViT-L/16 (16
# heads a layer, Fig. 7): some early heads are local, the late heads all far-reaching; whether
# ViT-B/16 does the same is what the real world's figure below shows. For the CLS token itself we
# measure the **entropy** of its attention over patches (renormalised to sum to 1),
# `H = −Σ_k p_k log p_k`, between 0 (one patch) and `log 196 ≈ 5.28` nats (uniform).


# %%
def mean_attention_distance(attentions, grid: int, patch: int) -> torch.Tensor:
    """Mean attention distance in pixels, ``[images, layers, heads]`` (Dosovitskiy et al. 2021)."""
    yx = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"), -1)
    centres = yx.reshape(-1, 2).float() * patch
    distance = torch.cdist(centres, centres)  # [P, P] pixels between patch centres
    per_layer = []
    for a in attentions:  # [B, heads, N, N]
        patches = a[:, :, 1:, 1:]
        patches = patches / patches.sum(-1, keepdim=True)
        per_layer.append((patches * distance).sum(-1).mean(-1))
    return torch.stack(per_layer, 1)


def cls_entropy(cls_attention: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the CLS attention over patches, renormalised: ``[..., h, w] -> [...]``."""
    p = cls_attention.flatten(-2)
    p = p / p.sum(-1, keepdim=True)
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


with torch.no_grad():
    outputs = model(pixel_values=pixel_values.to(DEVICE), output_attentions=True)
distance = mean_attention_distance([a.float().cpu() for a in outputs.attentions], grid[0],
                                   model.config.patch_size)
entropy = cls_entropy(attention)  # [images, layers, heads]
assert distance.shape == entropy.shape == (len(rows), n_layers, n_heads)
n_patches = grid[0] * grid[1]
assert (entropy >= 0).all() and (entropy <= np.log(n_patches) + 1e-4).all()
n_tokens = outputs.attentions[0].shape[-1]
uniform_distance = float(mean_attention_distance([torch.ones(1, 1, n_tokens, n_tokens)], grid[0],
                                                 model.config.patch_size))  # every patch read evenly

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4), layout="constrained")
layer_axis = np.arange(1, n_layers + 1)
per_head = pd.DataFrame([(layer, f"head {h + 1}", float(d)) for layer, heads in zip(layer_axis, distance.mean(0))
                         for h, d in enumerate(heads)], columns=["layer", "head", "distance"])  # image mean
sns.stripplot(per_head, x="layer", y="distance", hue="head", dodge=True, jitter=False, native_scale=True,
              palette="colorblind" if n_heads <= 10 else "husl", size=5, linewidth=0.5, edgecolor="white",
              legend=n_heads <= 8, ax=left)
left.axhline(uniform_distance, color="black", ls="--", lw=1, label="uniform attention")
left.set_xlabel("layer")
left.set_ylabel("mean attention distance (pixels)")
left.set_ylim(0, 224 * 0.55)
left.set_title(f"attention distance per head (side by side: head 1 to {n_heads})")
left.legend(ncol=2 if n_heads <= 8 else 1, loc="lower right")  # heads named when at most 8
for group, colour in (("correct", viz.CORRECT_COLOUR), ("incorrect", viz.WRONG_COLOUR)):
    chosen = torch.tensor((rows["group"] == group).tolist())
    curve = entropy[chosen].mean(2)  # [images of the group, layers], heads averaged
    right.plot(layer_axis, curve.mean(0), "o-", color=colour, label=f"{group} (n={int(chosen.sum())})")
    right.fill_between(layer_axis, curve.min(0).values, curve.max(0).values, color=colour, alpha=0.15)
right.axhline(np.log(n_patches), color="black", ls="--", lw=1, label=f"uniform over {n_patches} patches")
right.set_xlabel("layer")
right.set_ylabel("entropy of CLS attention (nats)")
right.set_title("how spread out the CLS token reads (band: min-max over images)")
right.legend(loc="lower left")
for ax in (left, right):
    ax.set_xticks(layer_axis)
viz.save(fig, "02_attention_distance_entropy")
plt.show()
local = (distance.mean(0) < uniform_distance / 2).sum(1)  # heads per layer reading close by
print(f"uniform attention: {uniform_distance:.1f} px. Heads with a mean distance under half of it "
      f"(local heads), per layer: {local.tolist()}")
pd.DataFrame({"mean distance (px)": distance.mean((0, 2)).double().numpy(),
              "CLS entropy (nats)": entropy.mean((0, 2)).double().numpy()},
             index=pd.Index(layer_axis, name="layer")).round(2)

# %% [markdown]
# Offline, the four-layer tiny model has no local heads: from the first layer on, every head's
# mean distance is about that of uniform attention, and its CLS token reads less evenly than
# uniform (entropy below `log 196` in every layer; `exp(H)` is the number of patches that, read
# evenly, would give the same entropy). In the real world, look for local heads in the early layers
# of ViT-B/16 (the printed count). Eight images make a noisy curve, so do not read much into the
# gap between correct and incorrect predictions (exercise 4).

# %% [markdown]
# ## Early against last layer, correct against incorrect
#
# The per-layer figure above already holds this comparison: its first and last columns are the
# first and the last layer's CLS attention (heads fused), its rows the correct predictions first,
# then the incorrect ones. Compare where the last layer reads when the model is wrong: on the
# object, on a distractor, or everywhere?

# %% [markdown]
# ## Explore
#
# Pick a sample, a layer and a head (or a fusion of all heads). The figure below is the default
# view, drawn statically so it also shows on GitHub and in a PDF; with a live Jupyter kernel the
# widgets underneath redraw it.

# %%
HEAD_CHOICES = [("mean of heads", "mean"), ("max of heads", "max"), ("min of heads", "min")] + [
    (f"head {h + 1}", h) for h in range(n_heads)]


def show_attention(sample: int = 0, layer: int = n_layers - 1, head="mean"):
    """The image and the CLS attention of one layer (one head, or the heads fused)."""
    layer_maps = attention[sample, layer]
    heat = fuse_heads(layer_maps[None], head)[0] if isinstance(head, str) else layer_maps[head]
    name = dict((v, k) for k, v in HEAD_CHOICES)[head]
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.6), layout="constrained")
    viz.show_image(a, pixel_values[sample], title=f"sample {sample} ({rows['group'][sample]})")
    a.set_xlabel(labels[sample], fontsize=8)
    viz.overlay(b, pixel_values[sample], heat, title=f"layer {layer + 1}, {name}", colorbar=True)
    return fig


show_attention()  # a panel of the per-layer figure above, so it is not saved again
plt.show()

# %%
def redraw(sample, layer, head):
    show_attention(sample, layer - 1, head)  # the slider counts layers from 1, as the figures do
    plt.show()


widgets = viz.live_widgets()  # None in batch runs and without ipywidgets
if widgets:
    widgets.interact(
        redraw,
        sample=widgets.IntSlider(0, 0, len(rows) - 1, description="sample"),
        layer=widgets.IntSlider(n_layers, 1, n_layers, description="layer (1 = first)"),
        head=widgets.Dropdown(options=HEAD_CHOICES, value="mean", description="head"))

# %% [markdown]
# ## Does the last layer look at the object? (offline world)
#
# Only the offline scenes come with the object's pixel mask, so only there can we check where
# attention goes. On standard scenes (the distribution the model was trained on) we compute, for
# every layer, the share of the CLS attention (heads fused, patches only) that falls on the object,
#
# `mass = Σ_c f_c a_c / Σ_c a_c`   (`f_c` = fraction of patch `c` covered by the mask),
#
# which is the relevance mass accuracy of Arras et al. (2022) applied to attention
# (`helpers.evaluate.localisation_scores`, which notebooks 03-05 use for every method). Attention spread evenly would score the object's **area
# share** (the mask's fraction of the image), so that is the floor to beat.

# %%
if world == "offline":
    scenes = helpers.load_dataset(world=world, split="standard", n_per_class=N_LOCALISATION_PER_CLASS,
                                  seed=SEED, processor=processor)
    layer_maps, masks = {layer: [] for layer in range(1, n_layers + 1)}, []  # heads fused, per layer
    for batch in torch.utils.data.DataLoader(scenes, batch_size=32):
        cls_maps = cls_attention_all(model, batch["pixel_values"].to(DEVICE)).cpu()  # [B, layers, heads, h, w]
        fused_maps = fuse_heads(cls_maps.flatten(0, 1), HEAD_FUSION).unflatten(0, cls_maps.shape[:2])
        for layer in layer_maps:
            layer_maps[layer].append(fused_maps[:, layer - 1])
        masks.append(batch["mask"])
    scores = E.localisation_scores({layer: torch.cat(m) for layer, m in layer_maps.items()}, torch.cat(masks))
    mass = torch.tensor(scores.pivot(index="image", columns="variant", values="mass").to_numpy())  # [images, layers]
    area = torch.tensor(scores.groupby("image")["area"].first().to_numpy())
    localisation = pd.DataFrame({"attention on object": mass.mean(0).numpy(),
                                 "object's area share": float(area.mean()),
                                 "images where attention beats area": (mass > area[:, None]).float().mean(0).numpy()},
                                index=pd.Index(np.arange(1, n_layers + 1), name="layer"))
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    ax.plot(localisation.index, localisation["attention on object"], "o-", label="CLS attention on the object")
    ax.fill_between(localisation.index, mass.quantile(0.25, 0).numpy(), mass.quantile(0.75, 0).numpy(),
                    alpha=0.2, label="interquartile range over images")
    ax.axhline(float(area.mean()), color="black", ls="--", lw=1, label="object's area share (uniform attention)")
    ax.set_xlabel("layer")
    ax.set_ylabel("share of CLS attention on the object")
    ax.set_ylim(0, 1)
    ax.set_xticks(localisation.index)
    ax.set_title(f"does attention fall on the object? ({len(area)} standard scenes)")
    ax.legend(loc="upper left")
    viz.save(fig, "02_attention_on_object")
    plt.show()
    display(localisation.round(3))  # noqa: F821 (IPython)
else:
    print("The real world has no object masks: this check runs in the offline world only.")

# %% [markdown]
# Measured on the trained tiny model: in every layer, about half of the CLS attention falls on an
# object that covers about a fifth of the image, in about nine images out of ten. The first layer
# is not worse than the last: depth does not focus the CLS token's reading on the object. The check
# below asks the last layer for at least 1.5 times the area share (the tiny model reaches well over
# twice it; a random-weight model reads evenly and scores the area share itself).

# %%
if world == "offline":
    last = localisation.iloc[-1]
    ratio = last["attention on object"] / last["object's area share"]
    print(f"last layer: {last['attention on object']:.2f} of the CLS attention on the object, "
          f"{ratio:.1f} times its area share; beats it in {100 * last['images where attention beats area']:.0f} % of images")
    assert ratio >= 1.5, "last-layer attention should fall on the object far more than uniform attention"

# %% [markdown]
# ## Summary
#
# - `cls_attention_all` gives the CLS → patch attention of every layer and head; each head reads a
#   different part of the image, and the layers × heads grid shows how varied they are.
# - Dosovitskiy et al. (2021, Fig. 7, ViT-L/16) saw attention distance grow with depth: some early
#   heads local, late heads far-reaching; the real world's figure shows whether ViT-B/16 does the
#   same. The four-layer tiny model has no local heads, while its CLS token reads less evenly than
#   uniform (entropy below `log 196`). A large mean distance means "far", not "evenly".
# - Offline, where masks exist, the CLS attention falls on the object far more than uniform
#   attention would, in every layer, the first as much as the last.
# - Raw attention is class-agnostic: it shows where the CLS token *reads*, not which patches
#   *support* the predicted class, and it ignores what the value vectors and the MLPs do with
#   what is read. The next notebooks propagate and weight it (rollout, Chefer, GMAR, LeGrad) or
#   replace it with relevance (AttnLRP).
#
# ## Exercises
#
# An exercise marked *(Offline.)* or *(Real world …)* needs that world (the scenes and their masks, or ImageNet-A's 1000-way head); the others work in both.
#
# 1. (Offline.) Switch `HEAD_FUSION` to `max` and `min`: which fusion gives the most object-like maps on the
#    offline scenes, by the localisation plot? Does `min` still beat the area share?
# 2. (Offline.) Repeat the localisation check on the `hard` split (`split="adversarial"`): does attention still
#    find small, occluded or low-contrast objects? Compare correct and incorrect predictions.
# 3. With the explorer, find a head whose attention is almost the same for every image. What might
#    it be doing (hint: look at `patch_share`, the attention the CLS token keeps for itself)?
# 4. Compute the mean attention distance and the CLS entropy on 50 correct and 50 incorrect
#    predictions instead of the selection: how stable is the per-head picture, and does the
#    entropy of correct and incorrect predictions differ?
