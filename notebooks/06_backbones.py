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
# # 06 · Explaining other backbones: DeiT and DINOv2 beside ViT
#
# Notebooks 02-05 explained one architecture. The models people fine-tune are often others: DeiT
# (a ViT trained with a *distillation token* beside CLS, read by a second head) and DINOv2
# (self-supervised features with a linear head that reads CLS *and* the mean of the patch tokens,
# sometimes with extra *register* tokens). Every method of the course runs on them unchanged,
# because everything that depends on the architecture lives in one small adapter per model class
# (`helpers.backbones`). This notebook puts the same methods on the same images through three
# backbones and measures them by notebook 05's protocol.
#
# **What you will learn**
#
# - what differs between ViT, DeiT and DINOv2 for an explanation method: the tokens before the
#   patches, which tokens the head reads, the patch grid, the image normalisation;
# - how a method that reads "the CLS row" generalises: it reads the rows the head reads;
# - localisation (offline), faithfulness and the sanity check per backbone × method, with 95 %
#   intervals: whether a method's ranking survives a change of backbone.
#
# *Where this sits:* after 05 (the evaluation protocol, reused here as it is).

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
BACKBONES = {  # label -> what helpers.load_model loads, per world
    "offline": {"ViT": "tiny", "DeiT": "tiny-deit", "DINOv2": "tiny-dinov2"},
    "real": {"ViT-B/16": "google/vit-base-patch16-224", "DeiT-Ti": "facebook/deit-tiny-patch16-224",
             "DeiT-B distilled": "facebook/deit-base-distilled-patch16-224",
             "DINOv2-S linear": "facebook/dinov2-small-imagenet1k-1-layer"},
}
METHODS = ["attention", "rollout (mean)", "chefer", "gmar (l1)", "legrad", "cp-lrp (balanced)"]
N_LOCALISATION_PER_CLASS = 2 if CI else 20  # standard scenes per class (6 classes), offline only
N_FAITHFULNESS = {"offline": 6 if CI else 32, "real": 2 if CI else 16}  # images for deletion
DELETION_STEPS = 5 if CI else 10  # curve points - 1
N_SANITY = {"offline": 2 if CI else 8, "real": 1 if CI else 3}  # images, one explanation a stage
BATCH_SIZE = 16

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import helpers
from helpers import evaluate as E
from helpers import predict as P
from helpers import viz
from helpers.backbones import adapter_for
from helpers.data import collate

helpers.set_data_dir(DATA_DIR)
world = helpers.resolve_world(WORLD)
torch.manual_seed(SEED)
VARIANTS = {label: variant for label, variant in E.method_variants().items() if label in METHODS}
assert list(VARIANTS) == METHODS, f"unknown method labels: {set(METHODS) - set(VARIANTS)}"
backbones = {label: helpers.load_model(name, device=DEVICE) for label, name in BACKBONES[world].items()}
print(f"{world} world: {', '.join(backbones)}; methods: {', '.join(VARIANTS)}")

# %% [markdown]
# ## 1 · What an explanation method needs to know about a backbone
#
# Each model class has one adapter (`helpers.backbones.adapter_for(model)`) that answers the
# methods' questions. The table is printed from the adapters and the processors of the models
# loaded above:
#
# - **prefix tokens**: the tokens before the patch tokens. A map keeps only the patch columns, so
#   a distillation token or a register read as a patch would shift every patch by one;
# - **head reads**: which token rows the classifier reads. Attention, rollout, Chefer and GMAR read
#   those rows of their token-mixing matrix (ViT: the CLS row; distilled DeiT: the mean of the
#   CLS and distillation rows, as its two heads are averaged; DINOv2: half the CLS row and half
#   the mean of the patch rows, as its head reads `concat(CLS, mean of patches)`); LeGrad scores
#   each layer with the model's own head;
# - **grid** and **normalisation**: the patch grid of the processed images, and the processor's
#   mean and standard deviation (what `viz.to_image` undoes to show the image).

# %%
def _shorten(values):
    return "/".join(f"{v:.3g}" for v in values)


facts = pd.DataFrame({label: {
    "class": type(model).__name__,
    "layers × heads": f"{model.config.num_hidden_layers} × {model.config.num_attention_heads}",
    "width": model.config.hidden_size,
    "prefix tokens": ", ".join(adapter_for(model).prefix_tokens),
    "head reads": adapter_for(model).head_reads,
    "patch": model.config.patch_size,
    "mean / std": f"{_shorten(processor.image_mean)} / {_shorten(processor.image_std)}",
} for label, (model, processor) in backbones.items()}).T
facts

# %% [markdown]
# ## 2 · The same images through every backbone
#
# Each backbone sees the images through its own processor (its size and normalisation). Offline
# they are standard scenes, and only scenes that *every* backbone classifies correctly are
# explained, for their true class, so that every row of the table below explains the same
# decisions. In the real world they are ImageNet-A images, explained for each model's own
# prediction under the 200-class protocol (there are no masks: no localisation).

# %%
data = {}
for label, (model, processor) in backbones.items():
    if world == "offline":
        dataset = helpers.load_dataset(world=world, split="standard", n_per_class=N_LOCALISATION_PER_CLASS,
                                       seed=SEED, processor=processor)
        rows = P.load_or_predict(model, dataset, world=world, batch_size=BATCH_SIZE, progress=False)
        print(f"{label}: {rows['correct'].mean():.0%} of {len(dataset)} standard scenes correct")
        data[label] = dataset, rows
    else:
        dataset = helpers.load_dataset(world=world, split="adversarial", n_per_class=1, seed=SEED,
                                       processor=processor)
        data[label] = dataset, None

if world == "offline":
    everywhere = np.logical_and.reduce([rows["correct"].to_numpy(dtype=bool) for _, rows in data.values()])
    chosen = [i for i, ok in enumerate(everywhere) if ok]
    print(f"{len(chosen)} scenes correct under every backbone are explained")
else:
    first = next(iter(data.values()))[0]
    order = torch.randperm(len(first), generator=torch.Generator().manual_seed(SEED)).tolist()
    readable = [i for i in order if first[i] is not None]  # skip unreadable files
    chosen = readable[:N_FAITHFULNESS[world]]

inputs = {}
for label, (model, processor) in backbones.items():
    dataset = data[label][0]
    items = collate([dataset[i] for i in chosen])
    if world == "offline":
        targets = items["label"]
    else:
        targets = E.predicted_targets(model, items["pixel_values"], dataset.head_indices)
    inputs[label] = items, targets
    grid = adapter_for(model).grid(items["pixel_values"])
    print(f"{label}: pixel values {tuple(items['pixel_values'].shape[-2:])}, patch grid {grid[0]} × {grid[1]}")

# %%
maps = {}
own_cache = P.cache_dir(world) / "06_backbones"  # make run executes 06 alongside 02-05: no shared map files
for label, (model, _) in backbones.items():
    items, targets = inputs[label]
    maps[label] = E.explain_variants(model, items["pixel_values"], targets, VARIANTS, batch_size=BATCH_SIZE,
                                     seed=SEED, progress=False, ids=items["id"], cache=own_cache)

# %% [markdown]
# One image through every backbone (rows), every method (columns). Maps are min-max scaled each on
# its own (LRP: signed, white = 0), so only where each map puts its weight is compared.

# %%
shown = 0
lrp = {v for v in VARIANTS if VARIANTS[v][0] == "attnlrp"}
images = [viz.to_image(inputs[label][0]["pixel_values"][shown], processor=processor)
          for label, (_, processor) in backbones.items()]  # each through its own normalisation
outlines = (torch.stack([inputs[label][0]["mask"][shown] for label in backbones])
            if world == "offline" else None)
first_items = next(iter(inputs.values()))[0]
name = first_items["class_name"][shown] if "class_name" in first_items else ""
fig, axes = viz.method_grid(images, {v: [maps[label][v][shown] for label in backbones] for v in VARIANTS},
                            list(backbones), signed=lrp, per_row=len(VARIANTS) + 1, outlines=outlines,
                            title=f"one image ({name}) through each backbone (rows) and method")
viz.save(fig, "06_maps_per_backbone")
plt.show()

# %% [markdown]
# ## 3 · Localisation, faithfulness and the sanity check per backbone
#
# Notebook 05's protocol, unchanged: the pointing game (Wilson 95 % interval) and relevance mass
# (bootstrap 95 %) on the scenes' masks, offline only; deletion and insertion areas (bootstrap
# 95 %) with each model's own baseline image (0 in its normalised space); and the cascading
# randomisation, summarised by the mean Spearman ρ once the head is randomised (`rho_head`) and
# once every weight is (`rho_final`, with a bootstrap 95 % interval over images). The random map is
# each backbone's floor.

# %%
tables = {}
for label, (model, _) in backbones.items():
    items, targets = inputs[label]
    pixels, masks = items["pixel_values"], items.get("mask")
    localisation = E.localisation_scores(maps[label], masks) if world == "offline" else None
    n = N_FAITHFULNESS[world]
    faith_maps = {v: m[:n] for v, m in maps[label].items() if v != E.UNIFORM}
    head_indices = None if world == "offline" else data[label][0].head_indices
    faithfulness, _ = E.faithfulness_scores(model, pixels[:n], targets[:n], faith_maps, steps=DELETION_STEPS,
                                            head_indices=head_indices, seed=SEED)
    s = N_SANITY[world]
    sanity = E.sanity_scores(model, pixels[:s], targets[:s], VARIANTS, seed=SEED, progress=False,
                             maps={v: m[:s] for v, m in maps[label].items()})  # the originals: computed above
    final = sanity[sanity["step"] == sanity["step"].max()].rename(columns={"rho": "rho_final"})
    table = E.results_table(localisation, faithfulness, sanity, seed=SEED)
    table = table.drop(columns="rho_final").join(E.mean_ci(final, "rho_final", seed=SEED))
    tables[label] = table.reindex([*VARIANTS, E.RANDOM, E.UNIFORM]).dropna(how="all")
results = pd.concat(tables, names=["backbone", "method"])
results.round(4).to_csv(viz.figure_dir() / "06_results_table.csv")
print(f"{len(pixels[:n])} images for deletion/insertion ({DELETION_STEPS} steps), {len(pixels[:s])} for the "
      f"sanity check, per backbone")
E.formatted(results)

# %% [markdown]
# The same numbers as bars: one group per method, one bar per backbone, 95 % intervals; the
# dashed lines are each backbone's random map.

# %%
panels = [("pointing", "pointing game (hit rate)"), ("mass", "relevance mass on the object"),
          ("deletion", "deletion area (lower = better)"), ("insertion", "insertion area (higher = better)"),
          ("rho_final", "sanity: ρ once every weight is random")]
panels = [(column, title) for column, title in panels if column in results and results[column].notna().any()]
colours = {label: style["color"] for label, style in viz.method_styles(list(backbones)).items()}
fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 0.45 * len(VARIANTS) * len(backbones) / 2 + 1.8),
                         sharey=True, layout="constrained", squeeze=False)
y = np.arange(len(VARIANTS))
height = 0.8 / len(backbones)
for ax, (column, title) in zip(axes[0], panels):
    for k, label in enumerate(backbones):
        rows = results.loc[label].reindex(list(VARIANTS))
        errors = [rows[column] - rows[f"{column}_lo"], rows[f"{column}_hi"] - rows[column]]
        ax.barh(y + (k - (len(backbones) - 1) / 2) * height, rows[column], height=height, xerr=errors,
                capsize=1.5, color=colours[label], label=label)
        if column != "rho_final":
            ax.axvline(results.loc[(label, E.RANDOM), column], color=colours[label], ls="--", lw=0.8)
    ax.set_xlabel(title)
    ax.set_xlim(min(0.0, float(results[f"{column}_lo"].min())), max(1.0, float(results[f"{column}_hi"].max())))
axes[0, 0].set_yticks(y, list(VARIANTS))
axes[0, 0].invert_yaxis()
axes[0, -1].legend(loc="lower right", fontsize=8)
fig.suptitle(f"every method on {len(backbones)} backbones ({world} world), 95 % intervals (dashed: random map)")
viz.save(fig, "06_results_bars")
plt.show()

# %% [markdown]
# ## 4 · What the numbers say
#
# Written from the table of this run. "Beats" means the 95 % intervals do not overlap; a method
# that neither beats nor loses to the random map is inconclusive with this many images.

# %%
def beats_random(table, column, higher_is_better=True):
    """Methods whose 95 % interval lies entirely on the better side of the random map's."""
    methods, random_row = table.loc[list(VARIANTS)], table.loc[E.RANDOM]
    if higher_is_better:
        return list(methods.index[methods[f"{column}_lo"] > random_row[f"{column}_hi"]])
    return list(methods.index[methods[f"{column}_hi"] < random_row[f"{column}_lo"]])


def names(labels):
    return ", ".join(labels) if labels else "none"


INSENSITIVE_RHO = 0.3  # one image's patches: rho > 0.3 is far from no correlation
metric_columns = [("deletion", False), ("insertion", True)]
if world == "offline":
    metric_columns = [("pointing", True), ("mass", True), *metric_columns]
for label, table in tables.items():
    methods = table.loc[list(VARIANTS)]
    lines = [f"{column} beats random: {names(beats_random(table, column, better))}" for column, better in metric_columns]
    best = (methods["mass"].idxmax(), methods["mass"].max()) if world == "offline" else None
    print(f"{label}: " + "; ".join(lines) + ".")
    if best:
        print(f"    most relevance mass: {best[0]} ({best[1]:.2f}; random {table.loc[E.RANDOM, 'mass']:.2f})")
    print(f"    class-agnostic (ρ > 0.99 after the head): {names(list(methods.index[methods['rho_head'] > 0.99]))}; "
          f"still correlated (ρ > {INSENSITIVE_RHO}) once every weight is random: "
          f"{names(list(methods.index[methods['rho_final'] > INSENSITIVE_RHO]))}")
ranking_column = "mass" if world == "offline" else "deletion"
ranks = pd.DataFrame({label: table.loc[list(VARIANTS), ranking_column].rank(ascending=ranking_column != "mass")
                      for label, table in tables.items()})
agreement = ranks.corr(method="pearson")  # Pearson on ranks = Spearman
pairs = [(a, b) for i, a in enumerate(ranks) for b in list(ranks)[i + 1:]]
print(f"Ranking of the methods by {ranking_column}, Spearman ρ between backbones: "
      + ", ".join(f"{a}–{b} {agreement.loc[a, b]:.2f}" for a, b in pairs))

# %% [markdown]
# **Why some methods blur on DINOv2.** DINOv2's head reads the mean of the patch tokens beside CLS,
# so the methods that read rows of a token-mixing matrix (attention, rollout, Chefer, GMAR) read
# half the mean of its patch rows. In rollout and Chefer every patch row carries the patch's own
# token through the skip connections (the identity in `R = I + …`), so that half is close to a
# uniform map, and a uniform map puts just the object's area share on the object: it pulls their
# relevance mass towards the random map's. LeGrad and LRP go through the head itself and are not
# blurred this way. Offline, the relevance mass of each method on each backbone, side by side:

# %%
if world == "offline":
    row_readers = {v for v in VARIANTS if VARIANTS[v][0] in ("attention", "rollout", "chefer", "gmar")}
    side_by_side = pd.DataFrame({label: table.loc[[*VARIANTS, E.RANDOM], "mass"]
                                 for label, table in tables.items()}).round(2)
    side_by_side["reads token rows"] = ["yes" if v in row_readers else "" for v in side_by_side.index]
    display(side_by_side)  # noqa: F821 (IPython)
else:
    print("Relevance mass needs the offline scenes' masks; ImageNet-A has none.")

# %% [markdown]
# Claims the discussion relies on, checked so that a regression fails the run.

# %%
assert set(results.index.get_level_values("backbone")) == set(backbones)
assert all(list(table.index[:len(VARIANTS)]) == list(VARIANTS) for table in tables.values())
assert results.loc[(slice(None), list(VARIANTS)), ["deletion", "insertion", "rho_head", "rho_final"]].notna().all().all()
target_readers = [v for v in VARIANTS if VARIANTS[v][0] in ("chefer", "legrad", "attnlrp")]
lrp_label = next(v for v in VARIANTS if VARIANTS[v][0] == "attnlrp")
if world == "offline":
    for label, table in tables.items():
        # class-sensitive maps change when the head is re-drawn, on every backbone
        # (CI size: rho_head <= 0.66 for Chefer, LeGrad and CP-LRP on the three tiny models)
        assert (table.loc[target_readers, "rho_head"] < 0.9).all(), label
        # CI size: CP-LRP mass >= 0.66 at the interval's low end vs the random map's <= 0.25 at its
        # high end, pointing 1.00 vs the random map's 0.72 at its high end, on every tiny model
        assert table.loc[lrp_label, "mass_lo"] > table.loc[E.RANDOM, "mass_hi"], label
        assert table.loc[lrp_label, "pointing"] > table.loc[E.RANDOM, "pointing_hi"], label

# %% [markdown]
# ## Summary
#
# - An explanation method needs to know a handful of things about a backbone: the tokens before
#   the patches, the rows its head reads, the patch grid, the normalisation, which LRP rule each
#   module gets, and what "randomise layer k" means. `helpers.backbones` keeps them in one small
#   adapter per model class; the methods themselves are the same code on every backbone.
# - Reading "the CLS row" generalises to reading the rows the head reads: a distilled DeiT averages
#   its CLS and distillation heads, DINOv2's linear head reads CLS and the mean of the patch tokens.
#   Prefix tokens (distillation, registers) are never patches.
# - The table puts every method on every backbone through notebook 05's protocol; the printed
#   lines say, for this run, which methods beat the random map on each backbone and how far the
#   methods' ranking agrees between backbones.
# - Offline, CP-LRP puts more of its relevance on the object than the random map and points at
#   the object more often, on each of the three tiny models (checked above); how the other methods
#   rank, and whether that ranking agrees between backbones, is printed above for this run.
# - The sanity check is per backbone: a class-agnostic map (attention, rollout) ignores the head
#   on every backbone by construction; the maps that follow the target's gradient or relevance
#   change when the head is re-drawn, on every backbone (checked above for the offline models).
#
# ## Exercises
#
# An exercise marked *(Offline.)* or *(Real world …)* needs that world; the others work in both.
#
# 1. Print `adapter_for(model).prefix_tokens` for each backbone. Then build rollout's matrix yourself
#    from `helpers.methods.rollout.rollout_matrix` and read only its CLS row (patch columns), and
#    compare with `helpers.explain(model, x, "rollout")`. On which backbones do they differ, and why?
# 2. Add `"gmar (l2)"` and `"rollout (max, discard 0.9)"` to `METHODS` and rerun: does rollout with
#    max fusion fail the sanity check on every backbone, as it does for ViT in notebook 05?
# 3. (Offline.) The distilled DeiT's two heads read different tokens. Explain the same scenes with
#    LeGrad through `model.cls_classifier` alone (write a one-token head) and compare its relevance
#    mass with the averaged head's.
# 4. (Real world.) Load `facebook/dinov2-small-imagenet1k-1-layer` with a processor crop of 448
#    instead of 224: the grid doubles (position embeddings are interpolated). Do the maps get
#    sharper, and does deletion get better?
