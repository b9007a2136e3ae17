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
# # 03 · Rollout, GMAR, LeGrad and Chefer's rule: following attention through the layers
#
# A single attention map (notebook 02) shows where one layer looks, not what the whole network
# used for its decision. The methods of this notebook combine *all* layers: attention rollout
# multiplies them, GMAR weights the heads by their gradients before multiplying, Chefer's rule
# accumulates gradient-weighted attention, and LeGrad asks at every layer how sensitive the class
# score already is to the attention.
#
# **What you will learn**
#
# - the formula behind rollout, GMAR, LeGrad and Chefer's rule, and what each option changes
#   (head fusion, discard ratio, L1 vs L2 head weights);
# - why rollout is *class-agnostic* (it explains the image, not the decision) while the gradient
#   methods explain one class;
# - how to ask a misclassified image "what did the model see instead?" by explaining the predicted
#   and the true class side by side;
# - how to *measure* localisation against ground-truth object masks (pointing game, relevance
#   mass) and compare it with what a random map would score.
#
# *Where this sits:* after 01 (the selected correct and incorrect samples) and 02 (raw attention);
# 04 explains the same samples with AttnLRP, 05 measures which explanation can be trusted.

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
N_PER_CLASS = 8 if CI else None  # used only if notebook 01's selection is missing
N_CORRECT, N_INCORRECT = 4, 4  # as in notebook 01
SEED = 0
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HEAD_FUSIONS = ["mean", "max", "min"]  # rollout: how the heads of a layer are merged
DISCARD_RATIOS = [0.0, 0.5, 0.9]  # rollout: share of the weakest attention entries dropped
METHODS = {  # column title -> (method, options) for helpers.explain
    "rollout": ("rollout", {"head_fusion": "mean"}),
    "GMAR L1": ("gmar", {"norm": "l1"}),
    "GMAR L2": ("gmar", {"norm": "l2"}),
    "LeGrad": ("legrad", {}),
    "Chefer": ("chefer", {}),
}
CONTRAST_METHODS = ["rollout", "Chefer", "GMAR L1", "LeGrad"]  # predicted vs true class
N_LOCALISATION = 48 if CI else 300  # standard scenes scored against their masks (offline)

# %% [markdown]
# ## The model and the selected samples
#
# The correct and incorrect predictions chosen in notebook 01 (recomputed here if that notebook has
# not run). Every method below explains the **predicted** class unless said otherwise.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import helpers
from helpers import evaluate as E
from helpers import metrics
from helpers import predict as P
from helpers import viz
from helpers.backbones import adapter_for

helpers.set_data_dir(DATA_DIR)
world = helpers.resolve_world(WORLD)
torch.manual_seed(SEED)
model, processor = helpers.load_model(world=world, device=DEVICE)
rows, pixels, dataset, predicted, true_label, is_correct, labels = P.selected_samples(
    model, processor, world, N_CORRECT, N_INCORRECT, SEED, N_PER_CLASS)  # checked: this model's
rows[["id", "group", "class_name", "pred_name", "confidence"]].round(3)

# %%
grid = adapter_for(model).grid(pixels)  # (rows, columns) of patches: (14, 14) at 224 px, 16 px patches
assert pixels.shape == (len(rows), 3, model.config.image_size, model.config.image_size)

# %% [markdown]
# ## Four ways to combine the layers
#
# Notation: `A_l` = post-softmax attention of layer `l` (`[heads, N, N]`, token 0 = CLS), `y_t` =
# the logit of the target class `t`, `rownorm` = divide each row by its sum. Every map is the CLS row
# of a token-to-token matrix with the CLS column dropped, on the 14 × 14 patch grid.
#
# | method | formula | paper |
# |---|---|---|
# | rollout | `R = Π_l rownorm(½ fuse_h(A_l) + ½ I)`, fuse = mean; max/min fusion and discarding the weakest entries are additions of jacobgil/vit-explain | Abnar & Zuidema 2020, *Quantifying Attention Flow in Transformers* (ACL) |
# | GMAR | rollout of `Σ_h w_{l,h} A_{l,h}` with `w_{l,h} ∝ ‖∂y_t/∂A_{l,h}‖₁` or `‖·‖₂` | Jo et al. 2025, *GMAR: Gradient-Driven Multi-Head Attention Rollout* (arXiv 2504.19414) |
# | LeGrad | `mean_l mean_{h,i} ReLU(∂s_l/∂A_l)[h, i, patches]`, `s_l = head(LayerNorm(h_l[CLS]))_t` | Bousselham et al. 2024, *LeGrad* (arXiv 2404.03214) |
# | Chefer | `R ← R + mean_h(∇A_l ⊙ A_l)⁺ · R` from `R = I`, `∇A_l = ∂y_t/∂A_l` | Chefer, Gur & Wolf 2021, *Generic Attention-model Explainability* (ICCV) |
#
# Only rollout has no `y_t` in it: it is the same map whichever class we ask about.

# %% [markdown]
# ## Rollout: head fusion and discard ratio
#
# One correct and one incorrect sample; each row is a sample with one head fusion, each column a
# discard ratio. `mean` fusion treats all
# heads alike, `max` lets the most focused head of each layer speak, `min` keeps only what all heads
# agree on. Discarding the weakest attention entries before multiplying (an addition of
# jacobgil/vit-explain, not in the paper) is meant to remove the diffuse background that accumulates
# over the layers. On the offline world's four-layer tiny model the fusion matters most: `min`
# fusion is diffuse, and discarding sharpens it; `mean` and `max` fusion change little with the
# discard ratio. With ViT-B/16's twelve layers, look for whether `mean` fusion washes out to a
# near-uniform map and how much discarding brings back.
# Maps are min-max normalised each: compare where they point, not how strongly.

# %%
rollout_settings = [(fusion, ratio) for fusion in HEAD_FUSIONS for ratio in DISCARD_RATIOS]
rollout_maps = torch.stack([
    helpers.explain(model, pixels, "rollout", head_fusion=fusion, discard_ratio=ratio)
    for fusion, ratio in rollout_settings], dim=1).cpu()  # [samples, settings, 14, 14]
shown = [int(np.flatnonzero(group)[0]) for group in (is_correct, ~is_correct) if group.any()]
by_fusion = rollout_maps.unflatten(1, (len(HEAD_FUSIONS), len(DISCARD_RATIOS)))[shown].flatten(0, 1)
fig, _ = viz.heatmap_grid(pixels[shown].cpu().repeat_interleave(len(HEAD_FUSIONS), 0), by_fusion,
                          [f"discard {ratio:g}" for ratio in DISCARD_RATIOS], image_column=False, cell=1.7,
                          row_labels=[f"{fusion} fusion\n{labels[i]}" for i in shown for fusion in HEAD_FUSIONS],
                          title="attention rollout: head fusion (rows) × discard ratio,\n"
                                "one correct and one incorrect sample")
viz.save(fig, "03_rollout_fusion_discard")
plt.show()

# %% [markdown]
# Rollout multiplies row-stochastic matrices, so its CLS row is a probability distribution over the
# tokens: every patch gets a share in [0, 1] and the patches' shares sum to at most 1 (the rest
# stays on CLS). A rollout that normalised columns instead of rows, or forgot to renormalise after
# discarding, would break this. (Rollout has no `y_t` in its formula: it cannot depend on the class
# we ask about, so there is nothing to test there.)

# %%
assert rollout_maps.shape == (len(rows), len(rollout_settings), *grid)
patch_share = rollout_maps.flatten(2).sum(-1)  # [samples, settings]
assert (rollout_maps >= 0).all() and (patch_share <= 1 + 1e-5).all() and (patch_share > 0).all()
print(f"share of the CLS row on the patches: {patch_share.min():.2f} to {patch_share.max():.2f}")

# %% [markdown]
# ## All methods side by side
#
# Rows: samples, with the true class, the prediction and its confidence (✓ right, ✗ wrong).
# Columns: the methods of `METHODS`, each explaining the predicted class. First the correctly
# classified samples, then the mistakes.

# %%
maps = {title: helpers.explain(model, pixels, method, target=predicted, **options).cpu()
        for title, (method, options) in METHODS.items()}
stacked = torch.stack(list(maps.values()), dim=1)  # [samples, methods, 14, 14]
for group, members in (("correct", is_correct), ("incorrect", ~is_correct)):
    if not members.any():
        continue
    index = np.flatnonzero(members)
    fig, _ = viz.heatmap_grid(pixels[index].cpu(), stacked[index], list(maps),
                              row_labels=[labels[i] for i in index],
                              title=f"{group} predictions: each method explains the predicted class")
    viz.save(fig, f"03_methods_{group}")
    plt.show()

# %%
assert stacked.shape == (len(rows), len(METHODS), *grid)
assert torch.isfinite(stacked).all()
for title in ("rollout", "GMAR L1", "GMAR L2", "LeGrad", "Chefer"):
    if title in maps:  # these methods are non-negative by construction (ReLU / positive part)
        assert (maps[title] >= 0).all(), f"{title} should be non-negative"

# %% [markdown]
# ## GMAR: L1 or L2 head weights?
#
# GMAR's only option is the norm that turns a head's attention gradient into its weight. L2 is
# dominated by the largest gradient entries, L1 by how many entries respond at all. Below, the head
# weights of every layer for the first sample (each layer's row sums to 1), computed with the same
# function GMAR uses; a uniform row is plain mean-fusion rollout.

# %%
from helpers.methods.gmar import attention_and_head_weights

weights = {norm: attention_and_head_weights(model, pixels[:1], predicted[:1].to(DEVICE), norm)[1][0].cpu()
           for norm in ("l1", "l2")}  # [layers, heads] for the first sample
n_layers = model.config.num_hidden_layers
fig, axes = plt.subplots(1, 2, figsize=(8, 0.35 * n_layers + 1.8), layout="constrained")
for ax, (norm, w) in zip(axes, weights.items()):
    handle = ax.imshow(w, cmap="viridis", vmin=0, vmax=float(max(v.max() for v in weights.values())))
    ax.set_xticks(range(w.shape[1]), range(1, w.shape[1] + 1))
    ax.set_yticks(range(w.shape[0]), range(1, w.shape[0] + 1))  # layers and heads from 1, as in 02
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"GMAR head weights, {norm.upper()} norm")
fig.colorbar(handle, ax=axes, label="weight (each layer's row sums to 1)")
fig.suptitle(labels[0].replace("\n", ", "))
viz.save(fig, "03_gmar_head_weights")
plt.show()
assert torch.allclose(weights["l1"].sum(1), torch.ones(n_layers), atol=1e-5)
similarity = metrics.spearman_per_image(maps["GMAR L1"], maps["GMAR L2"])
print(f"Spearman correlation of the L1 and L2 maps per sample: {np.round(similarity.numpy(), 3)}")

# %% [markdown]
# ## What did the model see instead?
#
# For every misclassified sample we explain two classes: the one the model **predicted** and the
# **true** one. A gradient method (Chefer, GMAR, LeGrad) gives two different maps: where the
# evidence for the wrong class lies, and where the evidence for the right class would have been.
# Rollout gives the same map twice: it is class-agnostic, so it can show where the model looked,
# but never *why it chose* one class over another. That is a lesson in itself: an explanation that
# ignores the target cannot explain a mistake.

# %%
wrong = np.flatnonzero(~is_correct)
if len(wrong):
    contrast, titles = [], []
    for title in CONTRAST_METHODS:
        method, options = METHODS[title]
        for which, target in (("predicted", predicted[wrong]), ("true", true_label[wrong])):
            contrast.append(helpers.explain(model, pixels[wrong], method, target=target, **options).cpu())
            titles.append(f"{title}\n→ {which} class")
    contrast = torch.stack(contrast, dim=1)  # [wrong samples, methods × 2, 14, 14]
    fig, _ = viz.heatmap_grid(pixels[wrong].cpu(), contrast, titles, row_labels=[labels[i] for i in wrong],
                              title="misclassified samples: evidence for the predicted vs the true class")
    viz.save(fig, "03_predicted_vs_true_class")
    plt.show()
else:
    print("No misclassified sample in the selection.")

# %% [markdown]
# How different are the two maps? The Spearman rank correlation between the map for the predicted
# and the map for the true class, per method (1 = the same ranking of patches):

# %%
if len(wrong):
    pairs = contrast.view(len(wrong), len(CONTRAST_METHODS), 2, *grid)
    agreement = pd.DataFrame(
        {title: metrics.spearman_per_image(pairs[:, k, 0], pairs[:, k, 1]).numpy()
         for k, title in enumerate(CONTRAST_METHODS)},
        index=[f"{rows['class_name'][i]} → {rows['pred_name'][i]}" for i in wrong])
    display(agreement.round(3))
    mean_rho = agreement.mean()
    print("mean ρ(predicted, true) per method: "
          + ", ".join(f"{title} {rho:.2f}" for title, rho in mean_rho.items()))

# %% [markdown]
# Rollout's correlation is exactly 1 by construction: it has no `y_t`. The others depend on the
# class in principle; the printed means say how much in this run. On the offline tiny model,
# Chefer's rule and LeGrad give clearly different maps for the two classes, while GMAR stays close
# to 1: its head weights change with the class, but after weighting and multiplying the attention
# of four layers the map is mostly the attention itself, i.e. rollout. A method whose ρ stays near
# 1 here can hardly tell *why* the model chose one class over another.

# %% [markdown]
# ## Do the maps point at the object? (offline world only)
#
# ImageNet-A has no object masks, so this section runs only in the offline world: the scenes'
# *standard* split comes with the target object's pixel mask. Each method explains the true class
# (which the model gets right on nearly all standard scenes) and is scored by
#
# - the **pointing game** (Zhang et al. 2018): is the most relevant patch within 15 px of the
#   object? A random map points at a uniformly random patch, so it hits with probability
#   *(patches within 15 px of the mask) / (all patches)*, computed from the masks themselves by
#   `metrics.pointing_chance`;
# - **relevance mass** (Arras et al. 2022): the share of the map's positive mass on the object.
#   A random map puts, on average, the object's share of the image area there.
#
# A random map is a low bar. A harder one: the **same architecture with untrained (random)
# weights**, explained by the same methods. Whatever it scores comes from the image and the method,
# not from anything the model learned.

# %%
if world == "offline":
    scenes = helpers.load_dataset(world=world, split="standard", n_per_class=N_LOCALISATION // 6,
                                  seed=SEED, processor=processor)
    scene_batch = helpers.data.collate([scenes[i] for i in range(len(scenes))])  # every scene, one batch
    scene_pixels, masks, scene_labels = scene_batch["pixel_values"], scene_batch["mask"], scene_batch["label"]
    scored_models = {"trained": model, "untrained": helpers.models.untrained_copy(model, SEED)}
    scores = {who: E.localisation_scores(E.explain_variants(  # maps kept in the cache for notebook 05
        scored, scene_pixels, scene_labels, METHODS, batch_size=32, references=False, seed=SEED,
        ids=scene_batch["id"], cache=P.cache_dir(world)), masks) for who, scored in scored_models.items()}
    hits = {(who, title): torch.tensor(part["pointing"].to_numpy())
            for who, frame in scores.items() for title, part in frame.groupby("variant", sort=False)}
    mass = {(who, title): torch.tensor(part["mass"].to_numpy())
            for who, frame in scores.items() for title, part in frame.groupby("variant", sort=False)}
    chance_hits = metrics.pointing_chance(masks, grid)
    area_share = masks.float().flatten(1).mean(1)
    print(f"{len(scenes)} standard scenes: the object covers {100 * area_share.mean():.1f} % of the image "
          f"on average; a random map wins the pointing game {100 * chance_hits.mean():.1f} % of the time")
else:
    print("Localisation against object masks needs the offline world's scenes (ImageNet-A has no masks).")

# %% [markdown]
# The random rate is checked against the pointing game itself: on one scene, a map that is maximal
# at one patch, for each of its patches in turn, hits exactly as often as `pointing_chance` says.

# %%
if world == "offline":
    one_hot_maps = torch.eye(grid[0] * grid[1]).view(-1, *grid)
    first_mask = masks[:1].expand(len(one_hot_maps), -1, -1)
    exact = metrics.pointing_game(one_hot_maps, first_mask).float().mean()
    assert exact == metrics.pointing_chance(masks[:1], grid)[0]
    assert len(chance_hits) == len(area_share) == len(scenes)

# %%
if world == "offline":
    def interval(values):
        _, lo, hi = metrics.bootstrap_ci(values, seed=SEED)  # Wilson for hits, bootstrap for mass
        return f"[{lo:.2f}, {hi:.2f}]"

    def mean(values):
        return values.float().mean().item()

    def cell(values):
        return f"{mean(values):.3f}"

    localisation = pd.DataFrame(
        {title: {"pointing game": cell(hits["trained", title]), "95 % CI": interval(hits["trained", title]),
                 "relevance mass": cell(mass["trained", title]), "95 % CI ": interval(mass["trained", title]),
                 "pointing game, untrained": cell(hits["untrained", title]),
                 "relevance mass, untrained": cell(mass["untrained", title])}
         for title in METHODS}).T
    localisation.loc["random map (from the masks)"] = [cell(chance_hits), "", cell(area_share), "", "", ""]
    display(localisation)  # noqa: F821 (IPython)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    x = np.arange(len(METHODS))
    for ax, scores, chance, label in ((axes[0], hits, chance_hits, "pointing game hit rate"),
                                      (axes[1], mass, area_share, "relevance mass on the object")):
        for offset, who, colour in ((-0.2, "trained", "#4393c3"), (0.2, "untrained", "#bababa")):
            stats = np.array([metrics.bootstrap_ci(scores[who, t], seed=SEED) for t in METHODS])  # mean, lo, hi
            errors = np.clip([stats[:, 0] - stats[:, 1], stats[:, 2] - stats[:, 0]], 0, None)
            ax.bar(x + offset, stats[:, 0], width=0.4, color=colour, yerr=errors, capsize=3,
                   error_kw={"lw": 1}, label=f"{who} model")
        ax.axhline(mean(chance), color="black", ls="--", lw=1, label="random map")
        ax.set_xticks(x, list(METHODS), rotation=30)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label)
    axes[1].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"localisation on {len(scenes)} standard scenes (each method explains the true class); "
                 "error bars: 95 % intervals")
    viz.save(fig, "03_localisation")
    plt.show()

# %% [markdown]
# Two lessons in one table. The **pointing game** is a weak test on these scenes: the target is the
# most conspicuous shape, so even the untrained model's maps often peak on it, far above the
# uniform-random rate. **Relevance mass** separates the two: the untrained model's maps put the
# object's area share on the object (they are no better than random there), the trained model's put
# far more. Rollout localises too, although it ignores the class: each standard scene has one target
# object, and rollout shows where the trained model looks.
#
# Floors that must hold, checked in code so that a regression fails the run. They were measured on
# the trained tiny model (48 and 300 scenes, several scene seeds) and set with a margin; the
# untrained model must *fail* the relevance-mass floors, which shows they can fail. The pointing
# game gets no floor of its own against the untrained model (none exists: untrained maps reached
# 1.77× the random rate, trained ones 1.57–2.06×); it is only required to beat the random map
# beyond its 95 % interval: a check that a map is not random, which the untrained model's maps
# pass as well, so the relevance-mass floors are the ones that tell trained from untrained.

# %%
if world == "offline":
    # measured (× the object's area share, 48 scenes × 5 seeds and 300 scenes): rollout and GMAR
    # 1.79-1.85, LeGrad 1.38-1.48, Chefer 2.82-2.93; untrained models (4 seeds): 0.96-1.06
    MASS_FLOORS = {"rollout": 1.5, "GMAR L1": 1.5, "GMAR L2": 1.5, "LeGrad": 1.2, "Chefer": 2.3}
    floors = pd.DataFrame({title: {
        "mass / area share": mass["trained", title].mean().item() / area_share.mean().item(),
        "floor": factor,
        "untrained": mass["untrained", title].mean().item() / area_share.mean().item(),
        "pointing, 95 % low": metrics.wilson_interval(int(hits["trained", title].sum()), len(scenes))[1],
        "random rate": chance_hits.mean().item()}
        for title, factor in MASS_FLOORS.items()}).T
    display(floors.round(2))  # noqa: F821 (IPython)
    for title, row in floors.iterrows():
        assert row["mass / area share"] >= row["floor"], f"{title}: relevance mass below its floor"
        assert row["untrained"] < row["floor"], f"{title}: the untrained model should fail the floor"
        assert row["pointing, 95 % low"] > row["random rate"], f"{title}: pointing game not above random"

# %% [markdown]
# ## Summary
#
# - **Rollout** multiplies the layers' attention (plus the skip connection) and reads the CLS row.
#   Head fusion changes the picture a lot (the discard ratio mostly for `min` fusion here). Nothing
#   in it depends on the class, so it cannot tell a correct from a wrong decision: the map is
#   identical for every target.
# - **GMAR** weights heads by the norm of their attention gradients before rolling out: a
#   class-specific rollout. L1 and L2 weights mostly agree (see their rank correlation), and on
#   the tiny model GMAR's maps barely change with the class: they stay close to plain rollout.
# - **Chefer's rule** and **LeGrad** use gradients at every layer; for a misclassified image the
#   map for the predicted class and the map for the true class differ, which shows what the model
#   took as evidence instead.
# - Offline, where object masks exist, every method localises the object on the trained model:
#   Chefer's rule puts the most relevance mass on it, then rollout and GMAR, then LeGrad.
#   The pointing game is a weak test here (an untrained model passes it too); relevance mass
#   separates the trained model from the untrained one, and the floors assert it.
#
# ## Exercises
#
# An exercise marked *(Offline.)* or *(Real world …)* needs that world (the scenes and their masks, or ImageNet-A's 1000-way head); the others work in both.
#
# 1. (Offline.) Add `("attention", {"layer": -1})` to `METHODS` (the last layer's raw attention, notebook 02).
#    Does it localise better or worse than rollout on the standard scenes?
# 2. (Offline.) LeGrad's official code uses only the last two layers: add `"LeGrad (last 2)": ("legrad",
#    {"layers": slice(-2, None)})` and compare its pointing game with the all-layer default.
# 3. (Offline.) Raise `DISCARD_RATIOS` up to 0.99. At what ratio does rollout stop pointing at the object? Use
#    the localisation cell with `("rollout", {"discard_ratio": r})` to measure it.
# 4. For the misclassified samples, compute the Spearman correlation between Chefer's map for the
#    predicted class and *rollout*. Is the "wrong" evidence where the model looked anyway?
