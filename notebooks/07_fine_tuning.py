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
# # 07 · Fine-tuning a ViT on a new task, and what it does to the explanations
#
# The models of notebooks 01-06 were trained by someone else, for their labels. Most people who
# explain a ViT have fine-tuned it first, on their own classes. This notebook does that with the
# tools they use — Hugging Face `datasets` for the data and `transformers.Trainer` for the
# training — and then asks the course's question of the result: do its explanations still point
# at the evidence, and how far did fine-tuning move them?
#
# **What you will learn**
#
# - how to put images and labels into a `datasets.Dataset` and let the model's own image processor
#   turn them into `pixel_values` on the fly (`set_transform`);
# - how to give a pretrained classifier a new head for new classes (`num_labels`,
#   `ignore_mismatched_sizes`) and fine-tune it with `Trainer` and `TrainingArguments`;
# - how to report the result: accuracy with a 95 % interval, macro F1, and a labelled confusion
#   matrix, against the untrained head and chance;
# - how the explanations of the same images change: their rank correlation before and after
#   and, offline, their localisation on the object masks.
#
# *Where this sits:* after notebook 05 (the metrics used here) and 06 (other backbones). Offline,
# the tiny ViT learns a coarser labelling of its scenes (round, polygon, pointed); in the real
# world, ViT-B/16 learns CIFAR-10 (`uoft-cs/cifar10` on the Hugging Face hub).

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
# The real world's data set: a Hugging Face dataset id, or a folder laid out like its repo.
FINETUNE_DATA = os.environ.get("COURSE_FINETUNE_DATA", "uoft-cs/cifar10")
N_TRAIN_PER_CLASS = {"offline": 40 if CI else 200, "real": 40 if CI else 500}
N_TEST_PER_CLASS = {"offline": 20 if CI else 100, "real": 20 if CI else 100}
EPOCHS = {"offline": 2 if CI else 3, "real": 3 if CI else 2}
LEARNING_RATE = {"offline": 1e-3, "real": 1e-4}
BATCH_SIZE = 32
N_EXPLAIN_PER_CLASS = 4 if CI else 20  # test images per class explained before and after
METHODS = {"rollout": ("rollout", {}), "chefer": ("chefer", {}),
           "attnlrp (balanced)": ("attnlrp", {"preset": "balanced", "variant": "attnlrp"})}

# %%
import tempfile

import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import confusion_matrix, f1_score
from transformers import Trainer, TrainingArguments, ViTForImageClassification
from transformers.utils import logging as hf_logging

import helpers
from helpers import evaluate as E
from helpers import metrics, viz
from helpers.models import REAL_MODEL, TINY_DIR, resolve_precision
from helpers.scenes import CLASS_NAMES, make_scene

helpers.set_data_dir(DATA_DIR)
world = helpers.resolve_world(WORLD)
torch.manual_seed(SEED)
datasets.disable_progress_bars()  # no bars in saved notebooks (they would freeze mid-way)
hf_logging.disable_progress_bar()
base_model, processor = helpers.load_model(world=world, device=DEVICE)  # the model before fine-tuning
print(f"starting point: {type(base_model).__name__}, {base_model.config.num_hidden_layers} layers, "
      f"{base_model.config.num_labels} classes")

# %% [markdown]
# ## 1 · A new task as a `datasets.Dataset`
#
# Offline, the new task relabels the scenes: the six shapes become three coarser classes,
# *round* (disk, ring), *polygon* (square, triangle) and *pointed* (star, cross). The scenes keep
# their object masks, stored as a second image column, so that we can still check where the
# explanations point. Training scenes and test scenes have different seeds: the test scenes are
# new to the model. In the real world the data are CIFAR-10's 32 × 32 photos of 10 classes,
# loaded with `datasets.load_dataset` and subsampled, class-balanced.

# %%
COARSE = {"round": ["disk", "ring"], "polygon": ["square", "triangle"], "pointed": ["star", "cross"]}
COARSE_OF = {shape: coarse for coarse, shapes in COARSE.items() for shape in shapes}


def scene_dataset(n_per_class: int, seed: int) -> datasets.Dataset:
    """Standard scenes relabelled with the coarse classes; ``mask`` is the object's mask."""
    scenes = [make_scene("standard", seed, i) for i in range(n_per_class * len(CLASS_NAMES))]
    features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(COARSE)),
                                  "shape": datasets.Value("string")})
    return datasets.Dataset.from_dict({
        "image": [Image.fromarray(s.image) for s in scenes],
        "mask": [Image.fromarray(s.mask.astype(np.uint8) * 255) for s in scenes],
        "label": [list(COARSE).index(COARSE_OF[s.class_name]) for s in scenes],
        "shape": [s.class_name for s in scenes]}, features=features)


def per_class(dataset: datasets.Dataset, n: int, seed: int) -> datasets.Dataset:
    """The first ``n`` images of each class after a seeded shuffle, in shuffled order."""
    shuffled = dataset.shuffle(seed=seed)
    labels = np.asarray(shuffled["label"])
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in np.unique(labels)]))
    return shuffled.select(keep)


if world == "offline":
    # Every coarse class has two shapes: n_per_class shapes each give n_per_class / 2 scenes a shape.
    train_data = scene_dataset(N_TRAIN_PER_CLASS[world] * len(COARSE) // len(CLASS_NAMES), seed=SEED + 1)
    test_data = scene_dataset(N_TEST_PER_CLASS[world] * len(COARSE) // len(CLASS_NAMES), seed=SEED + 2)
else:
    raw = datasets.load_dataset(FINETUNE_DATA)
    raw = raw.rename_column("img", "image") if "img" in raw["train"].column_names else raw
    train_data = per_class(raw["train"], N_TRAIN_PER_CLASS[world], SEED)
    test_data = per_class(raw["test"], N_TEST_PER_CLASS[world], SEED)
class_names = train_data.features["label"].names
K = len(class_names)
print(f"{len(train_data)} training and {len(test_data)} test images, {K} classes: {', '.join(class_names)}")
print(train_data)

# %% [markdown]
# The dataset holds encoded images; the model needs normalised tensors. `set_transform` runs the
# model's own image processor on each batch when it is read, so nothing is converted twice and the
# preprocessing is exactly the model's (resize to 224 px, its mean and standard deviation).

# %%
def to_model_inputs(batch):
    inputs = processor(images=[image.convert("RGB") for image in batch["image"]], return_tensors="pt")
    return {"pixel_values": inputs["pixel_values"], "labels": batch["label"]}


train_data.set_transform(to_model_inputs)
test_data.set_transform(to_model_inputs)
first = train_data[0]
print(f"one training item: pixel_values {tuple(first['pixel_values'].shape)}, label {first['labels']} "
      f"({class_names[first['labels']]})")

# %% [markdown]
# ## 2 · A new head, then `Trainer`
#
# `from_pretrained(..., num_labels=K, ignore_mismatched_sizes=True)` keeps every pretrained weight
# but the classifier, whose shape no longer fits, and draws a new one at random. Before any
# training that head is at chance: the encoder's features are good, the head does not know what
# they mean for the new classes. All the weights are then fine-tuned together.

# %%
source = str(TINY_DIR) if world == "offline" else REAL_MODEL
hf_logging.set_verbosity_error()  # the mismatched-head notice names a local path; we say it below
model = ViTForImageClassification.from_pretrained(
    source, num_labels=K, id2label=dict(enumerate(class_names)),
    label2id={name: i for i, name in enumerate(class_names)}, ignore_mismatched_sizes=True,
    attn_implementation="eager", local_files_only=world == "offline")
hf_logging.set_verbosity_warning()
print(f"classifier: {base_model.classifier.out_features} classes -> {model.classifier.out_features} "
      f"(new, random); the other {sum(p.numel() for p in model.vit.parameters()):,} weights pretrained")

precision = resolve_precision("auto", DEVICE) if DEVICE.startswith("cuda") else "fp32"
output_dir = tempfile.mkdtemp(prefix="finetune-")  # Trainer's scratch folder; nothing is saved
args = TrainingArguments(
    output_dir=output_dir, num_train_epochs=EPOCHS[world], learning_rate=LEARNING_RATE[world],
    per_device_train_batch_size=BATCH_SIZE, per_device_eval_batch_size=2 * BATCH_SIZE,
    lr_scheduler_type="cosine", warmup_steps=0.1, weight_decay=0.05, eval_strategy="epoch",
    logging_strategy="epoch", save_strategy="no", report_to="none", seed=SEED,
    remove_unused_columns=False,  # keep "image" for the transform: it makes pixel_values itself
    disable_tqdm=not viz.progress_enabled(), use_cpu=DEVICE == "cpu", dataloader_num_workers=0,
    bf16=precision == "bf16", fp16=precision == "fp16")


def compute_metrics(prediction):
    predicted = prediction.predictions.argmax(-1)
    return {"accuracy": float((predicted == prediction.label_ids).mean()),
            "macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro"))}


trainer = Trainer(model=model.to(DEVICE), args=args, train_dataset=train_data, eval_dataset=test_data,
                  compute_metrics=compute_metrics)
if not viz.progress_enabled():  # batch run: no per-step printing (it carries timings)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)

# %% [markdown]
# The same test images, scored before fine-tuning (the new head as drawn) and after:

# %%
def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy with its Wilson 95 % interval and macro F1 with a bootstrap 95 % interval."""
    predicted = logits.argmax(-1)
    accuracy, lo, hi = metrics.wilson_interval(int((predicted == labels).sum()), len(labels))
    rng = np.random.default_rng(SEED)
    resampled = [f1_score(labels[i], predicted[i], average="macro")
                 for i in rng.integers(0, len(labels), (200, len(labels)))]
    f1_lo, f1_hi = np.quantile(resampled, [0.025, 0.975])
    return {"accuracy": accuracy, "accuracy_lo": lo, "accuracy_hi": hi,
            "macro_f1": f1_score(labels, predicted, average="macro"), "macro_f1_lo": f1_lo,
            "macro_f1_hi": f1_hi}


before = trainer.predict(test_data)
trainer.train()
after = trainer.predict(test_data)
labels = after.label_ids
results = pd.DataFrame({"before fine-tuning": scores(before.predictions, labels),
                        "after fine-tuning": scores(after.predictions, labels)}).T
history = pd.DataFrame([log for log in trainer.state.log_history if "eval_accuracy" in log])
history = history.set_index("epoch")[["eval_loss", "eval_accuracy", "eval_macro_f1"]]
display(history.round(3))  # noqa: F821 (IPython)
display(results.round(3))  # noqa: F821 (IPython)
print(f"chance: {1 / K:.3f}; {len(labels)} test images")

# %%
chance = 1 / K
assert results.loc["after fine-tuning", "accuracy_lo"] > results.loc["before fine-tuning", "accuracy_hi"], \
    "fine-tuning did not lift the accuracy beyond the untrained head's interval"
assert results.loc["after fine-tuning", "accuracy_lo"] > chance + 0.1, "fine-tuned accuracy too close to chance"

# %% [markdown]
# The history is the test set scored after each epoch. The interval says how much a different
# draw of test images could move the accuracy; macro F1 averages the per-class F1 scores, so a
# class the model neglects pulls it down even when the accuracy looks fine. The confusion
# matrix shows which classes are taken for which:

# %%
predicted = after.predictions.argmax(-1)
matrix = confusion_matrix(labels, predicted, labels=range(K))
fig, ax = plt.subplots(figsize=(1.0 + 0.6 * K, 0.8 + 0.55 * K), layout="constrained")
image = ax.imshow(matrix, cmap="Blues")
for (row, col), count in np.ndenumerate(matrix):
    ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
            color="white" if count > matrix.max() / 2 else "black")
ax.set_xticks(range(K), class_names, rotation=45, ha="right")
ax.set_yticks(range(K), class_names)
ax.set_xlabel("predicted class")
ax.set_ylabel("true class")
fig.colorbar(image, ax=ax, label="test images")
ax.set_title(f"after fine-tuning: accuracy {results.loc['after fine-tuning', 'accuracy']:.2f}, "
             f"macro F1 {results.loc['after fine-tuning', 'macro_f1']:.2f}")
viz.save(fig, "07_confusion_matrix")
plt.show()

# %% [markdown]
# ## 3 · The same images explained before and after
#
# Before: the original model explaining its own prediction among its original classes. After:
# the fine-tuned model explaining its prediction among the new classes. Both on the same test
# images, with the methods of notebooks 03 and 04. Two questions:
#
# - **how much did the maps move?** Spearman's rank correlation ρ between the map before and the
#   map after, per image (1: the same ranking of patches; 0: unrelated), with a bootstrap interval;
# - **offline: do they still point at the object?** Pointing game and relevance mass on the object
#   masks (notebook 05), with their intervals, before and after.

# %%
explained = per_class(test_data.with_format(None), N_EXPLAIN_PER_CLASS, SEED)
explained.set_transform(to_model_inputs)
pixels = torch.stack([explained[i]["pixel_values"] for i in range(len(explained))]).to(DEVICE)
model.eval()
with torch.no_grad():
    targets = {"before": base_model(pixel_values=pixels).logits.argmax(-1).cpu(),
               "after": model(pixel_values=pixels).logits.argmax(-1).cpu()}
maps = {when: E.explain_variants(m, pixels, targets[when], METHODS, batch_size=BATCH_SIZE, seed=SEED,
                                 references=True)
        for when, m in (("before", base_model), ("after", model))}
moved = pd.DataFrame({
    label: metrics.bootstrap_ci(metrics.spearman_per_image(maps["before"][label], maps["after"][label]),
                                seed=SEED)
    for label in METHODS}, index=["rho", "rho_lo", "rho_hi"]).T
print(f"{len(pixels)} test images; rank correlation of each map before and after fine-tuning:")
display(moved.round(2))  # noqa: F821 (IPython)

# %%
if world == "offline":
    masks = torch.stack([torch.from_numpy(np.asarray(explained.with_format(None)[i]["mask"]) > 127)
                         for i in range(len(explained))])
    localisation = pd.concat({when: E.results_table(E.localisation_scores(maps[when], masks), seed=SEED)
                              for when in ("before", "after")}, names=["model", "variant"])
    display(E.formatted(localisation))  # noqa: F821 (IPython)
else:
    localisation = None
    print("Localisation needs object masks: only the offline world's scenes have them "
          "(CIFAR-10 does not). Run with COURSE_WORLD=offline for this section.")

# %%
if localisation is not None:
    random_mass_hi = localisation.loc[("after", E.RANDOM), "mass_hi"]
    for label in METHODS:
        row = localisation.loc[("after", label)]
        print(f"{label}: relevance mass {localisation.loc[('before', label), 'mass']:.2f} before, "
              f"{row['mass']:.2f} [{row['mass_lo']:.2f}, {row['mass_hi']:.2f}] after "
              f"(random map: {localisation.loc[('after', E.RANDOM), 'mass']:.2f})")
    assert all(localisation.loc[("after", label), "mass_lo"] > random_mass_hi for label in ["chefer"]), \
        "after fine-tuning, Chefer's maps no longer put more relevance on the object than a random map"

# %%
shown = [0, len(pixels) // 2, len(pixels) - 1]
label = "chefer"
row_labels = [f"before: {base_model.config.id2label[int(targets['before'][i])]}\n"
              f"after: {class_names[int(targets['after'][i])]}" for i in shown]
fig, axes = viz.heatmap_grid(pixels[shown].cpu(), [[maps["before"][label][i], maps["after"][label][i]]
                                                   for i in shown],
                             ["before fine-tuning", "after fine-tuning"], row_labels=row_labels,
                             title=f"{label}: the same images, each model explaining its own prediction")
viz.save(fig, "07_before_after")
plt.show()

# %% [markdown]
# ## Summary
#
# - A `datasets.Dataset` with `set_transform` feeds `Trainer` with the model's own preprocessing;
#   `num_labels` + `ignore_mismatched_sizes` give a pretrained encoder a new head.
# - The untrained head scores at chance; a few epochs of fine-tuning lift accuracy and macro F1 far
#   above it, and the confusion matrix shows which classes remain confused.
# - Explanations are not a property of the encoder alone: the same image gets a different map once
#   the head and the weights change, and how different depends on the method (the ρ table of
#   section 3; rollout, which never reads the head, can only move as far as the attention does).
#   Offline, the masks let us check that the fine-tuned model's maps still point at the object.
#
# ## Exercises
#
# 1. *(both worlds)* Freeze the encoder (`for p in model.vit.parameters(): p.requires_grad = False`)
#    and train only the head: a linear probe. How do accuracy and the before/after ρ compare with
#    full fine-tuning, and why must rollout's ρ be exactly 1 then?
# 2. *(offline)* Replace the coarse labelling with another one (e.g. *textured* vs *plain*: disk
#    against the rest). Which classes does the confusion matrix now confuse, and does the relevance
#    mass stay above the random map's?
# 3. *(both worlds)* Halve `N_TRAIN_PER_CLASS` twice. How quickly do accuracy and its interval
#    shrink, and at what size does the assertion above start to fail?
