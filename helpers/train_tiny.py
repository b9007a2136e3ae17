"""Train the offline world's tiny models on generated scenes: ``python -m helpers.train_tiny --model vit``
(or ``deit``, ``dinov2``).

Three recipes (:data:`RECIPES`), one training loop:

- ``vit``: a ``transformers.ViTForImageClassification`` (Dosovitskiy et al. 2021) with ViT-B/16's
  input pipeline (224 px, 16 px patches, a 14x14 grid, mean = std = 0.5) but a narrow, shallow
  encoder, so it trains from scratch on two CPU cores in minutes.
- ``deit``: a ``DeiTForImageClassificationWithTeacher`` (Touvron et al. 2021) of the same size and
  input pipeline: a CLS and a distillation token, one head on each. The CLS head learns the labels,
  the distillation head the trained tiny ViT's arg-max (hard-label distillation, DeiT's
  ``DistillationLoss(distillation_type="hard")``): ``loss = CE(cls, y) / 2 + CE(dist, argmax
  teacher) / 2``; at inference the two heads' logits are averaged.
- ``dinov2``: a ``Dinov2ForImageClassification`` (Oquab et al. 2023) of the same size, patch 16 at
  224 px (a 14x14 grid like the others, where the hub's DINOv2 has patch 14 at 224 px: 16x16),
  ImageNet mean/std normalisation, layer scale, and the DINOv2 head on CLS concatenated with the
  mean patch token. It is trained supervised from scratch, not self-supervised. Every training image is fresh
(``helpers.scenes.make_scene("standard", TRAIN_SEED, i)``, class ``i mod K``), so the generator's
random colours, positions, sizes and clutter are the augmentation. AdamW, linear warm-up then a
cosine schedule, label smoothing; deterministic given the seed (same thread count, same machine).

To fit the CPU budget, the first ``--low-res-fraction`` of the steps sees 112x112 crops around the
target (a 7x7 grid, about a quarter of the compute; the position embeddings are interpolated by
``interpolate_pos_encoding``), and the rest the full 224x224 scenes. Crops rather than downscaled
scenes keep the objects at the scale of the final task, so the switch costs little (downscaling
was tried: 98 % at 112 px fell to 59 % after the switch). The saved model is an ordinary
224-pixel, 14x14-grid ViT.

Writes ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` and ``manifest.json``
(configuration, seeds, generator version, accuracies on fresh seeds, time, versions) into ``--out``
(by default the recipe's folder under ``data/``, where :func:`helpers.models.load_model` finds it).
"""
from __future__ import annotations

import argparse
import datetime
import json
import inspect
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .data import default_processor
from .models import TINY_MODELS
from .scenes import CLASS_NAMES, GENERATOR_VERSION, SceneDataset, make_scene, to_pixel_values

TRAIN_SEED = 424_242
EVAL_SEED = 100_001
ARCHITECTURE = dict(image_size=224, patch_size=16, num_channels=3, hidden_size=128,
                    num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                    hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, qkv_bias=True)
DINOV2_ARCHITECTURE = dict(image_size=224, patch_size=16, num_channels=3, hidden_size=128,
                           num_hidden_layers=4, num_attention_heads=4, mlp_ratio=2,
                           hidden_act="gelu", layer_norm_eps=1e-6, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0, qkv_bias=True, layerscale_value=1.0,
                           use_swiglu_ffn=False, drop_path_rate=0.0)
HALF = (0.5, 0.5, 0.5)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Recipe(NamedTuple):
    """One tiny model: its transformers classes, size, input normalisation and (for DeiT) the
    teacher whose arg-max its distillation head learns."""
    name: str  # what helpers.models.load_model calls it
    model_class: str
    config_class: str
    architecture: dict
    image_mean: tuple = HALF
    image_std: tuple = HALF
    teacher: str | None = None
    # Training length (the command line's defaults): steps, the share on 112 px crops, warm-up.
    steps: int = 2400
    low_res_fraction: float = 0.8
    warmup: int = 100

    @property
    def out_dir(self) -> Path:
        return TINY_MODELS[self.name]

    def processor(self):
        """The image processor saved beside the weights: for 224x224 scenes it gives exactly the
        normalised pixels training saw (:func:`normalise`)."""
        if (self.image_mean, self.image_std) == (HALF, HALF):
            return default_processor()
        from PIL import Image
        from transformers import BitImageProcessor  # what the hub's DINOv2 checkpoints use

        return BitImageProcessor(do_resize=True, size={"shortest_edge": 224},
                                 resample=Image.Resampling.BICUBIC, do_center_crop=True,
                                 crop_size={"height": 224, "width": 224}, do_rescale=True,
                                 rescale_factor=1 / 255, do_normalize=True,
                                 image_mean=list(self.image_mean), image_std=list(self.image_std),
                                 do_convert_rgb=True)


RECIPES = {
    "vit": Recipe("tiny", "ViTForImageClassification", "ViTConfig", ARCHITECTURE),
    "deit": Recipe("tiny-deit", "DeiTForImageClassificationWithTeacher", "DeiTConfig", ARCHITECTURE,
                   teacher="tiny", steps=1000, low_res_fraction=0.9, warmup=50),
    "dinov2": Recipe("tiny-dinov2", "Dinov2ForImageClassification", "Dinov2Config",
                     DINOV2_ARCHITECTURE, IMAGENET_MEAN, IMAGENET_STD, steps=1000,
                     low_res_fraction=0.9, warmup=50),
}


def normalise(pixel_values: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Scene pixels as :func:`helpers.scenes.to_pixel_values` makes them (mean = std = 0.5) ->
    normalised with the recipe's mean and std."""
    if (recipe.image_mean, recipe.image_std) == (HALF, HALF):
        return pixel_values
    mean = torch.tensor(recipe.image_mean).view(3, 1, 1)
    std = torch.tensor(recipe.image_std).view(3, 1, 1)
    return (pixel_values * 0.5 + 0.5 - mean) / std


def build_model(seed: int, recipe: Recipe = RECIPES["vit"]):
    """A freshly initialised tiny model of ``recipe`` with the scene classes as labels."""
    import transformers

    torch.manual_seed(seed)
    config = getattr(transformers, recipe.config_class)(
        **recipe.architecture, num_labels=len(CLASS_NAMES), id2label=dict(enumerate(CLASS_NAMES)),
        label2id={name: i for i, name in enumerate(CLASS_NAMES)})
    return getattr(transformers, recipe.model_class)(config)


def _forward(model, pixels: torch.Tensor, low_res: bool):
    """``model(pixels)``; at 112 px the position embeddings are interpolated (DINOv2 always does
    it, ViT and DeiT when asked)."""
    if low_res and "interpolate_pos_encoding" in inspect.signature(model.forward).parameters:
        return model(pixel_values=pixels, interpolate_pos_encoding=True)
    return model(pixel_values=pixels)


CROP = 112


def training_batch(step: int, batch_size: int, crop: bool = False):
    """Batch ``step`` of the training stream: fresh standard scenes, classes balanced; with
    ``crop``, a CROP x CROP window around each target's centre (shifted by up to 24 px)."""
    first = step * batch_size
    scenes = [make_scene("standard", TRAIN_SEED, i) for i in range(first, first + batch_size)]
    images = [s.image for s in scenes]
    if crop:
        shifts = np.random.default_rng([TRAIN_SEED, step]).integers(-24, 25, size=(batch_size, 2))
        images = [_crop_around_target(s, shift) for s, shift in zip(scenes, shifts)]
    pixels = torch.stack([to_pixel_values(image) for image in images])
    return pixels, torch.tensor([s.class_idx for s in scenes])


def _crop_around_target(scene, shift):
    centre = np.argwhere(scene.mask).mean(0) + shift
    top, left = np.clip(np.round(centre - CROP / 2).astype(int), 0, scene.mask.shape[0] - CROP)
    return scene.image[top:top + CROP, left:left + CROP]


class TrainingStream(torch.utils.data.Dataset):
    """Item ``step`` = :func:`training_batch` ``(step, batch_size)``, normalised for ``recipe``;
    lets a worker process generate the next batches while the model trains (the batches do not
    depend on the worker)."""

    def __init__(self, steps: int, batch_size: int, low_res_steps: int, recipe: Recipe):
        self.steps, self.batch_size, self.low_res_steps = steps, batch_size, low_res_steps
        self.recipe = recipe

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        pixels, labels = training_batch(step, self.batch_size, crop=step < self.low_res_steps)
        return normalise(pixels, self.recipe), labels


def _single_threaded_worker(_):
    torch.set_num_threads(1)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def accuracy(model, split: str, n: int, seed: int = EVAL_SEED, batch_size: int = 100,
             recipe: Recipe = RECIPES["vit"]) -> float:
    """Top-1 accuracy of ``model`` (made by ``recipe``) on ``n`` scenes of ``split`` with ``seed``."""
    model.eval()
    data = SceneDataset(split, n=n, seed=seed)
    correct = 0
    for start in range(0, n, batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, n))]
        pixels = normalise(torch.stack([it["pixel_values"] for it in items]), recipe)
        logits = model(pixel_values=pixels).logits
        correct += (logits.argmax(-1) == torch.tensor([it["label"] for it in items])).sum().item()
    return correct / n


def _loss_fn(recipe: Recipe, label_smoothing: float):
    """``loss(output, pixels, labels, low_res)``: cross-entropy on the labels; for a recipe with a
    teacher, DeiT's hard-label distillation (the mean of the CLS head's loss on the labels and
    the distillation head's loss on the teacher's arg-max)."""
    cross_entropy = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if recipe.teacher is None:
        return lambda output, pixels, labels, low_res: cross_entropy(output.logits, labels)
    from .models import load_model

    teacher, _ = load_model(recipe.teacher)
    teacher_recipe = next(r for r in RECIPES.values() if r.name == recipe.teacher)
    assert (teacher_recipe.image_mean, teacher_recipe.image_std) == (recipe.image_mean, recipe.image_std)

    def loss(output, pixels, labels, low_res):
        with torch.no_grad():
            teacher_labels = _forward(teacher, pixels, low_res).logits.argmax(-1)
        return (cross_entropy(output.cls_logits, labels)
                + torch.nn.functional.cross_entropy(output.distillation_logits, teacher_labels)) / 2

    return loss


def train(steps: int, batch_size: int, lr: float, warmup: int, weight_decay: float,
          label_smoothing: float, seed: int, log_every: int, low_res_steps: int,
          recipe: Recipe = RECIPES["vit"]):
    model = build_model(seed, recipe)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = _loss_fn(recipe, label_smoothing)
    model.train()
    running_loss, running_correct = 0.0, 0
    batches = torch.utils.data.DataLoader(TrainingStream(steps, batch_size, low_res_steps, recipe),
                                          batch_size=None, num_workers=1, prefetch_factor=4,
                                          worker_init_fn=_single_threaded_worker)
    for step, (pixels, labels) in enumerate(batches):
        low_res = step < low_res_steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup)
        output = _forward(model, pixels, low_res)
        logits = output.logits
        loss = loss_fn(output, pixels, labels, low_res)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running_loss += loss.item()
        running_correct += (logits.argmax(-1) == labels).sum().item()
        if (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps}  loss {running_loss / log_every:.3f}  "
                  f"train acc {running_correct / (log_every * batch_size):.3f}", flush=True)
            running_loss, running_correct = 0.0, 0
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(RECIPES), default="vit",
                        help="which tiny model to train (deit needs the trained tiny vit)")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--low-res-fraction", type=float, default=None,
                        help="fraction of the steps trained at 112x112 (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--eval-n", type=int, default=600, help="scenes per split to evaluate")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is several times faster than 2 on a shared CPU; "
                             "use 2 on an idle machine)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the model's folder under data/)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the model saved in --out (e.g. after the hard or background "
                             "split changed) and update its manifest; no training")
    args = parser.parse_args(argv)
    recipe = RECIPES[args.model]
    args.out = args.out or recipe.out_dir
    for key in ("steps", "low_res_fraction", "warmup"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(recipe, key))

    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        import transformers

        model = getattr(transformers, recipe.model_class).from_pretrained(
            args.out, local_files_only=True).eval()
        manifest = json.loads((args.out / "manifest.json").read_text())
    else:
        low_res_steps = round(args.low_res_fraction * args.steps)
        start = time.perf_counter()
        model = train(args.steps, args.batch_size, args.lr, args.warmup, args.weight_decay,
                      args.label_smoothing, args.seed, args.log_every, low_res_steps, recipe)
        manifest = training_manifest(args, recipe, low_res_steps, time.perf_counter() - start, model)
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out, safe_serialization=True)
        recipe.processor().save_pretrained(args.out)
    scores = {split: accuracy(model, split, args.eval_n, recipe=recipe)
              for split in ("standard", "hard", "background")}
    print("accuracy on fresh scenes (seed %d): %s" % (EVAL_SEED, scores))
    manifest.update({
        "generator_version": GENERATOR_VERSION,
        "evaluation": {"seed": EVAL_SEED, "images_per_split": args.eval_n,
                       "accuracy": {k: round(v, 4) for k, v in scores.items()},
                       "chance": round(1 / len(CLASS_NAMES), 4),
                       "date": datetime.date.today().isoformat()},
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "numpy": np.__version__},
    })
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"saved to {args.out}")


def training_manifest(args, recipe, low_res_steps, seconds, model):
    """What was trained, how, and how long it took (the evaluation is added by :func:`main`)."""
    extra = {} if recipe.teacher is None else {
        "distillation": {"teacher": recipe.teacher, "type": "hard (teacher's arg-max)",
                         "loss": "CE(cls_logits, label) / 2 + CE(distillation_logits, teacher) / 2"}}
    return {
        "model": recipe.model_class,
        "architecture": recipe.architecture,
        "normalisation": {"mean": list(recipe.image_mean), "std": list(recipe.image_std)},
        **extra,
        "classes": CLASS_NAMES,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {"steps": args.steps, "batch_size": args.batch_size,
                     "images": args.steps * args.batch_size, "split": "standard",
                     "steps_on_112px_crops": low_res_steps, "data_seed": TRAIN_SEED,
                     "init_seed": args.seed, "optimizer": "AdamW", "lr": args.lr,
                     "warmup_steps": args.warmup, "schedule": "linear warm-up, cosine decay",
                     "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing,
                     "threads": args.threads, "seconds": round(seconds, 1),
                     "date": datetime.date.today().isoformat()},
    }


if __name__ == "__main__":
    main()
