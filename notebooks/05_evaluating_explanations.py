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
# # 05 · Which explanation can we trust? Measured side by side
#
# Notebooks 02-04 produced many heatmaps for the same decision, and they do not agree. Looking at
# them cannot settle which one is right: a map that *looks* plausible may show what we expect
# rather than what the model uses. This notebook measures every method by the same protocol, on
# the same images, and puts the numbers in one table.
#
# **What you will learn**
#
# - *localisation*: does the map point at the object (pointing game) and put its relevance on it
#   (relevance mass)? Only the offline scenes have the ground-truth masks to check this;
# - *faithfulness*: does deleting the patches a map ranks first destroy the prediction, and does
#   inserting them restore it (deletion and insertion curves, Petsiuk et al. 2018)?
# - *sanity*: does the map change when the model it explains is destroyed (cascading
#   randomisation, Adebayo et al. 2018)?
# - *cost*: what each method costs in forward passes; and why every number needs a confidence
#   interval and a baseline (a random map) before it means anything.
#
# *Where this sits:* the last notebook. It measures the methods of notebooks 02 (attention),
# 03 (rollout, Chefer, GMAR, LeGrad) and 04 (CP-LRP and AttnLRP with Gamma rules).

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
PRESETS = None  # CP-LRP Gamma presets (None: every preset of notebook 04)
FULL_ATTNLRP_PRESETS = ["balanced"]  # full AttnLRP (relevance through the softmax) beside CP-LRP
N_MISTAKES_PER_CLASS = 4 if CI else 20  # hard scenes per class searched for mistakes (offline)
ROLLOUT_MAX_DISCARD = 0.9  # also rollout with max fusion, lowest 90 % discarded (None: leave out)
N_LOCALISATION_PER_CLASS = 3 if CI else 40  # standard scenes per class (6 classes), offline only
# Sizes per world: ViT-B/16 costs ~0.25 s per forward pass on a CPU, the tiny model ~20x less.
N_FAITHFULNESS = {"offline": 12 if CI else 64, "real": 4 if CI else 16}  # images for deletion
DELETION_STEPS = 7 if CI else 14  # curve points - 1; each step changes (patches / steps) patches
DELETION_BASELINE = "zero"  # what replaces a patch: "zero" (grey) | "blur" | "mean"
N_SANITY = {"offline": 3 if CI else 12, "real": 2 if CI else 4}  # images, one explanation a stage
BATCH_SIZE = 16

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import helpers
from helpers import evaluate as E
from helpers import metrics
from helpers import predict as P
from helpers import viz
from helpers.data import collate
from helpers.backbones import adapter_for

helpers.set_data_dir(DATA_DIR)
world = helpers.resolve_world(WORLD)
torch.manual_seed(SEED)
model, processor = helpers.load_model(world=world, device=DEVICE)
VARIANTS = E.method_variants(PRESETS or E.GAMMA_PRESETS, ROLLOUT_MAX_DISCARD, FULL_ATTNLRP_PRESETS)
REFERENCES = [E.RANDOM, E.UNIFORM]
model_name = model.config.name_or_path.rstrip("/").split("/")[-1]  # a hub id's or a folder's last part
print(f"{model_name}: {model.config.num_hidden_layers} layers; "
      f"{len(VARIANTS)} method variants: {', '.join(VARIANTS)}")

# %% [markdown]
# ## The contestants and two references
#
# Every method of the course with its options: raw last-layer attention, rollout (mean fusion;
# and max fusion discarding the lowest 90 % of the entries, as in vit-explain), Chefer's rule,
# GMAR with L1 and L2 head norms, LeGrad, LRP with CP-LRP in the attention (`cp-lrp`, lxt's ViT
# path) for each Gamma preset of notebook 04, and full AttnLRP (`attnlrp`) beside it. All
# maps are taken on the 14 × 14 patch grid (LRP summed per patch), so every method is scored
# at the same resolution. Two references carry no information about the model at all:
#
# - the **random map**: i.i.d. noise, i.e. a uniformly random patch order. A method that does not
#   beat it on a metric has shown nothing on that metric;
# - the **uniform map**: every patch equally relevant. Its relevance mass is exactly the object's
#   share of the image, and it points nowhere (a tie everywhere is no hit).
#
# ## 1 · Localisation: does the map point at the object?
#
# The offline scenes come with the pixel mask of the target object, the only place in the course
# where we know where the evidence is. We explain the standard scenes the model classifies
# correctly, for their true (= predicted) class, and score
#
# - the **pointing game** (Zhang et al. 2018): a hit when the map's maximal patch lies within
#   15 px of the object; reported with a Wilson 95 % interval;
# - **relevance mass accuracy** (Arras et al. 2022): the share of *positive* relevance that falls on
#   the object, `Σ_c f_c R_c⁺ / Σ_c R_c⁺` (`f_c` = the object's share of patch `c`), with a
#   bootstrap 95 % interval.

# %%
if world == "offline":
    scenes = helpers.load_dataset(world=world, split="standard", n_per_class=N_LOCALISATION_PER_CLASS,
                                  seed=SEED, processor=processor)
    scene_rows = P.load_or_predict(model, scenes, world=world, batch_size=BATCH_SIZE, progress=False)
    correct = np.flatnonzero(scene_rows["correct"].to_numpy())
    items = collate([scenes[int(i)] for i in correct])  # the correctly classified scenes, one batch
    scene_pixels, scene_masks, scene_targets = items["pixel_values"], items["mask"], items["label"]
    print(f"{len(scene_pixels)} of {len(scenes)} standard scenes classified correctly are explained; "
          f"the object covers {100 * scene_masks.float().mean():.1f} % of the image on average")
else:
    print("Localisation needs object masks: only the offline world's scenes have them "
          "(ImageNet-A does not). Run with COURSE_WORLD=offline for this section.")

# %%
if world == "offline":
    scene_maps = E.explain_variants(model, scene_pixels, scene_targets, VARIANTS, batch_size=BATCH_SIZE,
                                    seed=SEED, ids=items["id"], cache=P.cache_dir(world))  # 03, 04 cached most
    localisation = E.localisation_scores(scene_maps, scene_masks)
    grid = adapter_for(model).grid(scene_pixels)  # (rows, columns) of patches: (14, 14) at 224 px
    assert all(m.shape == (len(scene_pixels), *grid) for m in scene_maps.values())
    display(E.formatted(E.results_table(localisation)))
else:
    localisation = None

# %% [markdown]
# Three scenes and every method's map (each map scaled on its own, so only the ranking of patches
# is compared; LRP's signed maps on a blue–white–red scale centred at zero, the other methods'
# non-negative maps from dark to bright). The object's outline
# is what the localisation scores reward.

# %%
if world == "offline":
    shown = [0, len(scene_pixels) // 2, len(scene_pixels) - 1]
    lrp = [v for v in VARIANTS if VARIANTS[v][0] == "attnlrp"]  # signed maps
    balanced = [v for v in lrp if VARIANTS[v][1].get("preset") == "balanced"] or lrp[:1]  # one preset
    drawn = [v for v in VARIANTS if v not in lrp] + balanced
    fig, axes = viz.method_grid(scene_pixels[shown], {v: scene_maps[v][shown] for v in drawn},
                                [items["class_name"][i] for i in shown], signed=set(lrp), per_row=5,
                                outlines=scene_masks[shown],
                                title="every method on three standard scenes, explaining the true class "
                                      "(LRP: balanced preset, signed; cyan: the object)")
    viz.save(fig, "05_example_maps")
    plt.show()

# %% [markdown]
# ## 1b · Explaining mistakes: where is the evidence for the wrong answer?
#
# The scores above explain *correct* decisions on standard scenes. The course's question is about
# mistakes, and the offline hard scenes have object masks too. For every hard scene the model gets
# wrong, each method explains the **predicted (wrong)** class, and we measure how much of the
# map's positive relevance lies on the target object. A small share says the evidence for the wrong
# answer lies elsewhere (a distractor, clutter, the background); a large one that the model read
# the object and took it for something else. The hard scenes it gets right, explained for their
# (true = predicted) class, are the reference. Objects are smaller in the scenes the model gets
# wrong, so compare each group with its own random map (the object's area share in that group).
# ImageNet-A has no masks: the real world skips this.

# %%
if world == "offline":
    hard = helpers.load_dataset(world=world, split="adversarial", n_per_class=N_MISTAKES_PER_CLASS,
                                seed=SEED, processor=processor)
    hard_rows = P.load_or_predict(model, hard, world=world, batch_size=BATCH_SIZE, progress=False)
    hard_items = collate([hard[i] for i in range(len(hard))])
    hard_pixels, hard_masks = hard_items["pixel_values"], hard_items["mask"]
    wrong = ~hard_rows["correct"].to_numpy(dtype=bool)
    hard_maps = E.explain_variants(model, hard_pixels, torch.tensor(hard_rows["pred"].tolist()), VARIANTS,
                                   batch_size=BATCH_SIZE, seed=SEED, progress=False, ids=hard_items["id"],
                                   cache=P.cache_dir(world))
    mistake_mass = pd.concat({
        group: E.results_table(E.localisation_scores({label: maps[chosen] for label, maps in hard_maps.items()},
                                                     hard_masks[chosen]), seed=SEED)[["mass", "mass_lo", "mass_hi"]]
        for group, chosen in (("mistakes (predicted class)", wrong), ("correct (true class)", ~wrong))},
        axis=1).reindex([*VARIANTS, E.RANDOM])
    print(f"{len(hard)} hard scenes: {wrong.sum()} mistakes, {(~wrong).sum()} correct. The object covers "
          f"{100 * hard_masks[wrong].float().mean():.1f} % of the image in the mistakes, "
          f"{100 * hard_masks[~wrong].float().mean():.1f} % in the correct ones (a random map's mass).")
    display(mistake_mass.round(2))  # noqa: F821 (IPython)
else:
    mistake_mass = None
    print("Scoring the explanations of mistakes needs object masks: only the offline world's hard "
          "scenes have them (ImageNet-A does not).")

# %%
if world == "offline":
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(mistake_mass) + 1.4), layout="constrained")
    y = np.arange(len(mistake_mass))
    for offset, (group, colour) in zip((-0.2, 0.2), (("mistakes (predicted class)", viz.WRONG_COLOUR),
                                                      ("correct (true class)", viz.CORRECT_COLOUR))):
        part = mistake_mass[group]
        ax.barh(y + offset, part["mass"], height=0.4, color=colour, label=group,
                xerr=[part["mass"] - part["mass_lo"], part["mass_hi"] - part["mass"]], capsize=2)
    ax.set_yticks(y, mistake_mass.index)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("relevance mass on the target object (share of positive relevance), 95 % interval")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"hard scenes: {wrong.sum()} mistakes vs {(~wrong).sum()} correct answers")
    viz.save(fig, "05_mistakes_mass")
    plt.show()
    for group in mistake_mass.columns.levels[0]:
        part = mistake_mass[group]
        above = [v for v in VARIANTS if part.loc[v, "mass_lo"] > part.loc[E.RANDOM, "mass_hi"]]
        lift = part.loc[list(VARIANTS), "mass"] / part.loc[E.RANDOM, "mass"]
        print(f"{group}: above the random map (intervals apart) for {len(above)} of {len(VARIANTS)} "
              f"variants; mass / random mass from {lift.min():.1f}× ({lift.idxmin()}) to "
              f"{lift.max():.1f}× ({lift.idxmax()}).")

# %% [markdown]
# ## 2 · Faithfulness: does the model need what the map shows?
#
# Deletion: replace the patches in order of relevance, most relevant first, by a grey patch and
# follow the probability of the explained class; the faster it falls (small area under the curve),
# the better the map found what the model needs. Insertion: start from a grey image and put the
# patches back in the same order; the faster the probability rises (large area), the better. Every
# method and the random order go through the same protocol: the same images, targets, baseline
# and steps. In the real world the images are ImageNet-A, the target is the model's prediction
# under the 200-class protocol, and the softmax is taken over those 200 classes; offline they
# are the localisation scenes with their maps.

# %%
if world == "offline":
    n = min(N_FAITHFULNESS[world], len(scene_pixels))
    faith_pixels, faith_targets = scene_pixels[:n], scene_targets[:n]
    faith_maps = {label: maps[:n] for label, maps in scene_maps.items()}
    head_indices = None
else:
    imagenet_a = helpers.load_dataset(world=world, split="adversarial", n_per_class=1, seed=SEED,
                                      processor=processor)
    order = torch.randperm(len(imagenet_a), generator=torch.Generator().manual_seed(SEED)).tolist()
    readable = (item for item in map(imagenet_a.__getitem__, order) if item is not None)  # skip unreadable
    first = zip(range(N_FAITHFULNESS[world]), readable)
    faith_items = collate([item for _, item in first])
    faith_pixels = faith_items["pixel_values"]
    head_indices = imagenet_a.head_indices
    faith_targets = E.predicted_targets(model, faith_pixels, head_indices)
    faith_maps = E.explain_variants(model, faith_pixels, faith_targets, VARIANTS, batch_size=BATCH_SIZE,
                                    seed=SEED, ids=faith_items["id"], cache=P.cache_dir(world))
faith_maps.pop(E.UNIFORM)  # a constant map has no order: its curve would be one random order
faithfulness, curves = E.faithfulness_scores(model, faith_pixels, faith_targets, faith_maps,
                                             steps=DELETION_STEPS, baseline=DELETION_BASELINE,
                                             head_indices=head_indices, seed=SEED)
print(f"{len(faith_pixels)} images, {DELETION_STEPS} steps of {faith_maps[E.RANDOM][0].numel() / DELETION_STEPS:.0f} patches, "
      f"baseline {DELETION_BASELINE!r}")
display(E.formatted(E.results_table(faithfulness=faithfulness)))

# %% [markdown]
# A deletion curve can only fall as far as the baseline lets it: once every patch is grey, the
# model sees the baseline image alone. What does it make of that image?

# %%
with torch.no_grad():
    emptied = metrics.baseline_image(faith_pixels, DELETION_BASELINE).to(DEVICE)
    emptied_logits = model(pixel_values=emptied).logits.cpu()
head = list(range(emptied_logits.shape[-1])) if head_indices is None else list(head_indices)
top_probability, top_position = P.masked_logits(emptied_logits, head).softmax(-1).max(-1)  # the curves' softmax
emptied_classes = torch.tensor(head)[top_position]
most_common = int(emptied_classes.mode().values)
share = (emptied_classes == most_common).float().mean()
print(f"Every patch deleted ({DELETION_BASELINE!r} baseline): classified as "
      f"{model.config.id2label[most_common]!r} in {100 * share:.0f} % of the images "
      f"(mean probability {top_probability[emptied_classes == most_common].mean():.2f}); "
      f"{100 * (faith_targets == most_common).float().mean():.0f} % of the images are explained "
      f"for that class, so their deletion curves cannot fall.")

# %% [markdown]
# In the offline world the grey image is a confident *disk*: disks are the one class drawn in a
# flat colour, so a flat grey image carries exactly their evidence. For disk scenes, deleting
# patches replaces the disk by more disk-like flatness and the curve stays high for every method
# and for the random order alike. That is a property of the baseline, not of the methods: it adds
# the same flat curves to every row and narrows the gap to the random map. Deletion and insertion
# measure what the model does with images it never saw in training; choosing the baseline is
# choosing which of those images (exercise 1 tries a blurred one).

# %%
styles = viz.method_styles(VARIANTS)  # one colour, marker and line style per method, in every figure
colours = {label: style["color"] for label, style in styles.items()}
families = {"attention and rollout": ("attention", "rollout"), "gradient methods": ("chefer", "gmar", "legrad"),
            "LRP": ("attnlrp",)}
families = {name: [v for v in VARIANTS if VARIANTS[v][0] in methods] for name, methods in families.items()}
mean_curve = {(label, mode): part.sort_values("fraction")[["fraction", "probability"]].to_numpy().T
              for (label, mode), part in curves.groupby(["variant", "mode"])}  # fractions, probabilities
same = {}  # curves of a family that coincide in both of its panels: drawn so that both show
for members in families.values():
    same |= viz.duplicates({label: np.concatenate([mean_curve[label, mode][1] for mode in ("deletion", "insertion")])
                            for label in members})
fig, axes = plt.subplots(2, len(families), figsize=(11, 6.8), sharex=True, sharey=True, layout="constrained")
for row, mode in enumerate(("deletion", "insertion")):
    fraction = mean_curve[E.RANDOM, mode][0]
    for ax, (family, members) in zip(axes[row], families.items()):
        ax.plot(fraction, mean_curve[E.RANDOM, mode][1], color="black", ls="--", lw=1.5, label="random order")
        viz.plot_curves(ax, fraction, {label: mean_curve[label, mode][1] for label in members}, styles, same=same)
        ax.set_title(f"{family}: {mode}" if row == 0 else mode)
    axes[row, 0].set_ylabel(f"{mode}: probability of\nthe explained class (mean)")
for ax, family in zip(axes[1], families):
    ax.set_xlabel("fraction of patches removed (top) /\ninserted (bottom), most relevant first")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), fontsize=8)
fig.suptitle(f"deletion (top: the lower, the more faithful) and insertion (bottom: the higher, the more "
             f"faithful), {len(faith_pixels)} images ({model_name})")
viz.save(fig, "05_deletion_insertion_curves")
plt.show()

# %% [markdown]
# ## 3 · Sanity check: does the map depend on the model?
#
# Adebayo et al. (2018) re-initialise a trained network from the top down, one stage at a time
# (here: the head, then each encoder layer from the last to the first, then the embeddings), and
# compare each new map with the original by Spearman's rank correlation ρ. An explanation of the
# model must change as the model is destroyed; a map that keeps ρ near 1 is explaining the image
# (edges, colours), not the model. Class-agnostic methods (raw attention, rollout) never read the
# head, so they cannot change at the first stage: that alone is not a failure, but it means they
# cannot tell classes apart.

# %%
sanity_pixels, sanity_targets = faith_pixels[:N_SANITY[world]], faith_targets[:N_SANITY[world]]
sanity = E.sanity_scores(model, sanity_pixels, sanity_targets, VARIANTS, seed=SEED,  # rho and rho_abs
                         maps={label: m[:len(sanity_pixels)] for label, m in faith_maps.items()})  # originals
lrp_variants = {label: spec for label, spec in VARIANTS.items() if spec[0] == "attnlrp"}
sanity_abs = sanity[sanity["variant"].isin(list(lrp_variants))]  # Adebayo et al.'s second reading: |map|
stage_names = list(dict.fromkeys(sanity["stage"]))
sanity.groupby(["variant", "step"], sort=False)["rho"].mean().unstack("step").set_axis(
    stage_names, axis=1).round(2)

# %%
mean_rho = sanity.groupby(["variant", "step"], sort=False)["rho"].mean()
mean_abs_rho = sanity_abs.groupby(["variant", "step"], sort=False)["rho_abs"].mean()
stages = range(1, len(stage_names) + 1)
fig, axes = plt.subplots(1, len(families), figsize=(11.5, 5.6), sharey=True, layout="constrained")
for ax, (family, members) in zip(axes, families.items()):
    viz.plot_curves(ax, stages, {label: mean_rho[label] for label in members}, styles)
    if family == "LRP":  # the same presets ranked by |R|: dotted, no legend entries of their own
        viz.plot_curves(ax, stages, {label: mean_abs_rho[label] for label in members if label in lrp_variants},
                        styles, legend_labels=False, linestyle=":")
    ax.axhline(0, color="black", lw=0.8, ls=":")
    ax.set_xticks(stages, [f"+ {s}" for s in stage_names], rotation=40, ha="right")
    ax.set_xlabel("randomised so far (cumulative, from the top)")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.42), fontsize=8)
    ax.set_title(family + (" (solid: signed R, dotted: |R|)" if family == "LRP" else ""))
axes[0].set_ylabel("Spearman ρ with the original map (mean)")
fig.suptitle(f"cascading randomisation, {len(sanity_pixels)} images: a map that explains the model "
             "falls towards ρ = 0")
viz.save(fig, "05_sanity_curves")
plt.show()

# %% [markdown]
# Read the curves stage by stage (the words below describe the tiny model's run committed with
# this notebook; the table above is the measurement). Raw attention is the last layer's attention: it is gone as soon
# as that layer is re-initialised. Rollout with mean fusion and GMAR hold on until the *first*
# layer is re-initialised: the product over layers is dominated by the early layers' attention.
# Rollout with max fusion and 90 % discarded keeps a clear correlation even when every weight is
# random: what it shows is largely the image's own structure passed through any attention. The
# methods that read the target (Chefer, LeGrad, LRP) already change at the head; GMAR reads it too,
# but only through its head weights, and barely moves.
#
# Signed LRP maps fall to ρ near 0 (or below) from the head stage on: re-drawing the head
# changes which patches speak *for* and *against* the class, so the signs, and with them the
# ranks, are reshuffled.
# Adebayo et al. also rank the magnitudes |R|, which keeps what is common to any explanation of
# the image (edges, the object's outline). Gamma rules favour positive contributions and are known
# to bring out such input structure; on randomly initialised ViTs the strong presets gave maps
# that stayed correlated (ρ ≈ 0.7) from one random model to another. The dotted curves above are
# the magnitude reading for the trained model; in numbers:

# %%
abs_rho = sanity_abs.groupby(["variant", "step"], sort=False)["rho_abs"].mean().unstack("step")
abs_rho.columns = stage_names
display(abs_rho.round(2))
print(f"|LRP| across the variants: ρ {abs_rho.iloc[:, 0].min():.2f} to {abs_rho.iloc[:, 0].max():.2f} "
      f"after the head, {abs_rho.iloc[:, -1].min():.2f} to {abs_rho.iloc[:, -1].max():.2f} after every weight.")

# %% [markdown]
# On the tiny model the magnitudes survive the head (the same patches matter, for or against),
# then fade as the encoder is re-drawn. The stronger the Gamma, the longer they hold: through the
# head and the upper layers the aggressive presets keep a higher ρ than LRP without Gamma,
# which is the input-structure bias of Gamma showing. But once every weight is random no preset
# keeps the trained map's ranking: ρ ends near or below 0, the random model putting its magnitude
# where the trained one did not. So the trained model's Gamma maps are not just the input
# structure that any network would show; the ρ ≈ 0.7 seen on random weights compared two *random*
# models, whose Gamma maps do share that structure. The check cannot say more than this: passing
# it shows the map depends on the weights, not that it shows the right thing. Note also that the Gamma presets barely differ on the patch grid: the patch embedding is a
# convolution with stride = kernel, so the conv Gamma only moves relevance *within* a patch, and
# the patch sums see only the linear layers' Gamma (aggressive and very aggressive share it).

# %% [markdown]
# ## 4 · Cost
#
# Time per image of each method divided by the time per image of one forward pass without
# gradients. Timing inside this notebook would measure a busy kernel on a handful of images (noise)
# and change at every run, so the numbers come from `make bench` (`helpers.bench`): ViT-B/16 with
# random weights, every method run between two runs of its floor, median of several rounds, read
# from its table `figures/bench/costs.csv` (the machine is printed below). A variant the bench does
# not run has no cost here. Seconds depend on the machine; the ratio much less.

# %%
from helpers import bench

COST_BATCH, COST_THREADS = 1, 1  # the bench setting shown (the table has batch 1 and 8, 1 and 2 threads)
if bench.CSV_PATH.exists():
    costs = bench.load_costs()
    cost = E.bench_costs(VARIANTS, costs, batch=COST_BATCH, threads=COST_THREADS)
    print(f"make bench, batch {COST_BATCH}, {COST_THREADS} thread; " + "; ".join(costs.attrs["header"][:2]))
    shown = cost.dropna()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2), layout="constrained")
    bars = ax.barh(shown["variant"], shown["cost"], color=[colours[v] for v in shown["variant"]])
    ax.bar_label(bars, fmt="%.1f×", padding=2, fontsize=8)
    ax.axvline(1, color="black", lw=0.8, ls=":")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12 * shown["cost"].max())
    ax.set_xlabel("time per image / time of one forward pass (dotted: 1 = one forward pass)")
    ax.set_title(f"cost of ViT-B/16's explanations (make bench), batch {COST_BATCH}, {COST_THREADS} thread")
    viz.save(fig, "05_cost")
    plt.show()
else:
    cost = None
    print("No cost table yet (figures/bench/costs.csv): run `make bench`, then this cell again.")

# %% [markdown]
# ## 5 · One table
#
# Everything above, one row per method (the two references at the bottom): pointing game and
# relevance mass with 95 % intervals (offline only), the deletion and insertion areas with 95 %
# bootstrap intervals, the mean Spearman ρ after randomising the head only (`sanity ρ (head)`)
# and after randomising every weight (`sanity ρ (final)`), and the cost in forward passes of
# ViT-B/16 where `make bench` measured it.
# The CSV keeps the raw numbers and the interval bounds (`*_lo`, `*_hi`).

# %%
results = E.results_table(localisation, faithfulness, sanity, cost, seed=SEED)
results = results.reindex([*VARIANTS, *REFERENCES])
table_path = viz.figure_dir() / "05_results_table.csv"
results.round(4).to_csv(table_path)
markdown_table = E.formatted(results).to_markdown(disable_numparse=True)  # keep "1.00", not "1"
(viz.figure_dir() / "05_results_table.md").write_text(markdown_table + "\n")
print(f"saved {table_path.name} and 05_results_table.md in {table_path.parent.name}/")
E.formatted(results)

# %%
fig, ax = plt.subplots(figsize=(14, 0.32 * len(results) + 0.8))
ax.axis("off")
shown_table = E.formatted(results)
drawn = ax.table(cellText=shown_table.to_numpy(), rowLabels=shown_table.index,
                 colLabels=list(shown_table.columns), loc="center", cellLoc="center")
drawn.auto_set_font_size(False)
drawn.set_fontsize(7.5)
drawn.scale(1, 1.3)
ax.set_title(f"05 · results ({world} world, {model_name}); "
             "[95 % interval]; deletion: lower is better", fontsize=10)
viz.save(fig, "05_results_table")
plt.show()

# %% [markdown]
# The same numbers as bars with their intervals. Grey bars are the references; a method whose
# interval overlaps the random map's has not shown, with this many images, that it does better.

# %%
panels = [("pointing", "pointing game (hit rate)"), ("mass", "relevance mass on the object"),
          ("deletion", "deletion area (lower = better)"), ("insertion", "insertion area (higher = better)")]
panels = [(column, title) for column, title in panels
          if column in results and results[column].notna().any()]  # no localisation in the real world
fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 0.3 * len(results) + 1.6),
                         sharey=True, layout="constrained", squeeze=False)
for ax, (column, title) in zip(axes[0], panels):
    rows = results[results[column].notna()]
    errors = [rows[column] - rows[f"{column}_lo"], rows[f"{column}_hi"] - rows[column]]
    ax.barh(rows.index, rows[column], xerr=errors, capsize=2,
            color=[viz.NEUTRAL_COLOUR if v in REFERENCES else colours[v] for v in rows.index])
    if E.RANDOM in rows.index:
        ax.axvline(rows.loc[E.RANDOM, column], color="black", ls="--", lw=0.8)
    ax.set_xlabel(title)
    ax.set_xlim(0, max(1.0, float(rows[f"{column}_hi"].max())))
axes[0, 0].invert_yaxis()
fig.suptitle("every method by the same protocol, 95 % intervals (dashed: the random map)")
viz.save(fig, "05_results_bars")
plt.show()

# %% [markdown]
# ## 6 · What the numbers say
#
# The text below is written from the table of this run, so it stays true when the numbers change
# (another world, more images, a retrained model). "Beats" means the 95 % intervals do not
# overlap; a method that neither beats nor loses to the random map is *inconclusive*, not equal.

# %%
methods = results.loc[list(VARIANTS)]
random_row = results.loc[E.RANDOM]


def beats_random(column, higher_is_better=True):
    """Methods whose 95 % interval lies entirely on the better side of the random map's."""
    if higher_is_better:
        return list(methods.index[methods[f"{column}_lo"] > random_row[f"{column}_hi"]])
    return list(methods.index[methods[f"{column}_hi"] < random_row[f"{column}_lo"]])


def names(labels):
    return ", ".join(labels) if labels else "none"


INSENSITIVE_RHO = 0.3  # one image's 196 patches: rho > 0.3 is p < 1e-4 under no correlation
findings = {}
if localisation is not None:
    findings["pointing"] = beats_random("pointing")
    findings["mass"] = beats_random("mass")
    print(f"Pointing game: best {methods['pointing'].idxmax()} ({methods['pointing'].max():.2f}), "
          f"worst {methods['pointing'].idxmin()} ({methods['pointing'].min():.2f}); random map "
          f"{random_row['pointing']:.2f}. Above random: {names(findings['pointing'])}.")
    ranked = methods["mass"].sort_values(ascending=False)
    print(f"Relevance mass: best {ranked.index[0]} ({ranked.iloc[0]:.2f}), second {ranked.index[1]} "
          f"({ranked.iloc[1]:.2f}), worst {ranked.index[-1]} ({ranked.iloc[-1]:.2f}); a uniform map scores "
          f"the object's area share, {results.loc[E.UNIFORM, 'mass']:.2f}. Spread between methods "
          f"{ranked.iloc[0] - ranked.iloc[-1]:.2f}, worst method above random by "
          f"{ranked.iloc[-1] - random_row['mass']:.2f}. Above random: {names(findings['mass'])}.")
findings["deletion"] = beats_random("deletion", higher_is_better=False)
findings["insertion"] = beats_random("insertion")
print(f"Deletion: best {methods['deletion'].idxmin()} ({methods['deletion'].min():.2f}) vs random "
      f"{random_row['deletion']:.2f}; better than random: {names(findings['deletion'])}.")
print(f"Insertion: best {methods['insertion'].idxmax()} ({methods['insertion'].max():.2f}) vs random "
      f"{random_row['insertion']:.2f}; better than random: {names(findings['insertion'])}.")
class_agnostic = list(methods.index[methods["rho_head"] > 0.99])
insensitive = list(methods.index[methods["rho_final"] > INSENSITIVE_RHO])
print(f"Sanity: maps unchanged when the head is randomised (class-agnostic): {names(class_agnostic)}. "
      f"Still correlated (ρ > {INSENSITIVE_RHO}) with the original after every weight is randomised, i.e. not "
      f"explaining the model: {names(insensitive)}. Lowest final ρ: {methods['rho_final'].idxmin()} "
      f"({methods['rho_final'].min():.2f}).")
if localisation is not None:
    for label in insensitive:
        print(f"{label} fails the sanity check, yet ranks {list(ranked.index).index(label) + 1} of "
              f"{len(ranked)} on relevance mass: a map can localise well without explaining the model.")
if cost is not None:  # from make bench, where its table exists
    print(f"Cost: cheapest {methods['cost'].idxmin()} ({methods['cost'].min():.1f}× a forward pass), "
          f"dearest {methods['cost'].idxmax()} ({methods['cost'].max():.1f}×).")
everywhere = set(methods.index).intersection(*map(set, findings.values()))
print(f"Better than random on every measured metric: {names([m for m in methods.index if m in everywhere])}.")

# %% [markdown]
# Claims that must hold for the discussion to be right are checked here, so a regression (a
# broken method, a changed metric) fails the run instead of silently changing the story.

# %%
assert list(results.index) == [*VARIANTS, *REFERENCES], "every method and both references in the table"
assert methods[["deletion", "insertion"]].notna().all().all() and (cost is None or methods["cost"].dropna().gt(0).all())
# the methods that follow the target's gradient or relevance back from the head must change when
# the head is re-drawn; GMAR reads the target only through its head weights, and barely changes
target_readers = [v for v in VARIANTS if VARIANTS[v][0] in ("chefer", "legrad", "attnlrp")]
gmar_variants = [v for v in VARIANTS if VARIANTS[v][0] == "gmar"]
if world == "offline":  # measured on the tiny model; the real world's sanity set is 2-4 images
    # full size: Chefer 0.51, LeGrad 0.37, LRP -0.04 to -0.01; GMAR 0.98 (l1) / 0.95 (l2)
    assert (methods.loc[target_readers, "rho_head"] < 0.9).all(), "class-sensitive maps change with the head"
    assert (methods.loc[gmar_variants, "rho_head"] > 0.85).all(), "GMAR is nearly class-blind here (the text says so)"
if localisation is not None:
    area_share = localisation.loc[localisation["variant"] == E.UNIFORM, "area"].mean()
    assert np.isclose(results.loc[E.UNIFORM, "mass"], area_share), "uniform mass = object area share"
    # trained tiny model, full size: pointing 0.86-0.95 vs random 0.47 [0.41, 0.53];
    # mass 0.31-0.79 vs random 0.22 [0.21, 0.22] (CI size: >= 0.88 vs [0.26, 0.69]; >= 0.31 vs [0.20, 0.24])
    assert (methods["pointing"] > random_row["pointing_hi"]).all(), "every method points better than random"
    assert (methods["mass"] > random_row["mass_hi"]).all(), "every method puts more mass on the object"
if world == "offline":
    # full size: deletion <= 0.41 vs random [0.68, 0.75], insertion up to 0.89 vs [0.69, 0.75]
    assert (methods["deletion"] < random_row["deletion_lo"]).all(), "every method deletes faster than random"
    assert methods["insertion"].max() > random_row["insertion_hi"], "the best method inserts better than random"
    # the sanity findings of the text: rollout with max fusion keeps the image's structure;
    # LRP's magnitudes do not outlive the model for any Gamma preset or attention rule
    if ROLLOUT_MAX_DISCARD is not None:
        assert methods.loc[f"rollout (max, discard {ROLLOUT_MAX_DISCARD:g})", "rho_final"] > INSENSITIVE_RHO
    assert (abs_rho.iloc[:, -1] < INSENSITIVE_RHO).all(), "|LRP| uncorrelated once every weight is random"
else:
    # Not measured here: the course has never seen ViT-B/16's numbers, and 4-16 ImageNet-A images
    # cannot separate a method from the random map. The findings above are printed, not asserted.
    print(f"Real world, {len(faith_pixels)} images: these comparisons are a first look; raise "
          "N_FAITHFULNESS before drawing a conclusion from them.")

# %% [markdown]
# ## Summary
#
# - A heatmap is a claim about the model; the metrics test three different claims. *Localisation*
#   asks whether the map agrees with where a human knows the object is; *faithfulness* whether the
#   model actually needs the patches the map ranks first; *sanity* whether the map depends on the
#   model's weights at all. A method can pass one and fail another, so report all three.
# - Every number needs a reference and an interval: the random map is the floor, the uniform map
#   gives the relevance mass of knowing nothing (the object's area share), and the 95 % intervals
#   say which differences the number of images can support. The printed discussion above names,
#   for this run, which methods clear the random map on each metric.
# - Offline, on the trained tiny model (full size), every method beats the random map on
#   localisation and on deletion. The methods differ from each other far more than the weakest
#   differs from random on relevance mass (LRP puts about three quarters of its positive relevance
#   on the object, LeGrad about a third against the area share's fifth; see the printed spread).
# - Localisation is not trust: rollout with max fusion and 90 % discarded puts more relevance on
#   the object than every method but LRP (ahead of Chefer's rule; its rank is printed above) and
#   yet it fails the sanity check. A map can point at the object because the *image* makes the
#   object conspicuous, whatever the model learned.
# - Mistakes (section 1b): for a wrong answer, the methods say where the evidence for that answer
#   lies. Measured against each group's random map (objects are smaller in the mistakes), the
#   printed lines say how many methods still find the evidence on the object, i.e. whether the
#   model read the object and misjudged it, or answered from somewhere else.
# - Faithfulness depends on the baseline: the grey image is itself a confident "disk", so disk
#   scenes cannot be deleted by any method. Always ask what the emptied image means to the model.
# - Class-agnostic maps (raw attention, rollout) do not change when the head is randomised, by
#   construction: they describe where the model reads, not what decided the class. GMAR reads the
#   class only through its head weights and barely changes either (ρ near 1 after the head): on
#   this model it is close to class-blind. Rollout with max fusion and 90 % discarded stays
#   correlated with its original map when every weight is random: it fails the sanity check.
#   LRP (CP-LRP with every Gamma preset, and full AttnLRP) passes it, signed and in magnitude,
#   although stronger Gamma keeps more of the map while the upper layers are re-drawn (its bias
#   towards the input's structure).
# - On the patch grid of this model, Gamma rules buy nothing measurable over LRP without Gamma,
#   and they cost more (a modified backward pass; `make bench` measures how much).
#
# ## Exercises
#
# An exercise marked *(Offline.)* or *(Real world …)* needs that world (the scenes and their masks, or ImageNet-A's 1000-way head); the others work in both.
#
# 1. Run the deletion curves with `DELETION_BASELINE = "blur"` (Petsiuk et al. insert into a
#    blurred image). Does the ranking of the methods change? What does that say about the metric?
# 2. (Offline.) The pointing game uses a 15 px tolerance. Recompute `localisation_scores` with
#    `tolerance=0`: which methods lose most, and why might coarse (rollout-like) maps be affected
#    differently from sharp (LRP) ones?
# 3. Add a method variant to `VARIANTS`, e.g. `("attention", {"layer": 0})` or LeGrad on the last
#    two layers only (`{"layers": [-2, -1]}`), and place it in the table.
# 4. The Gamma presets agree on the patch grid. Explain three scenes with the `aggressive` and
#    `very_aggressive` presets at `resolution="pixel"` and compare: where do they differ, and why
#    does the sum over each 16 × 16 patch hide it?
