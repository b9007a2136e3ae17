"""Train the offline world's tiny ViT on generated scenes: ``python -m helpers.train_tiny``.

The model is a ``transformers.ViTForImageClassification`` (Dosovitskiy et al. 2021) with ViT-B/16's
input pipeline (224 px, 16 px patches, a 14x14 grid, mean = std = 0.5) but a narrow, shallow
encoder, so it trains from scratch on two CPU cores in minutes. Every training image is fresh
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
(configuration, seeds, generator version, accuracies on fresh seeds, time, versions) into ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from .data import default_processor
from .scenes import CLASS_NAMES, GENERATOR_VERSION, SceneDataset, make_scene, to_pixel_values

OUT_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny_vit"
TRAIN_SEED = 424_242
EVAL_SEED = 100_001
ARCHITECTURE = dict(image_size=224, patch_size=16, num_channels=3, hidden_size=128,
                    num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                    hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, qkv_bias=True)


def build_model(seed: int):
    """A freshly initialised tiny ViT with the scene classes as labels."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(**ARCHITECTURE, num_labels=len(CLASS_NAMES),
                       id2label=dict(enumerate(CLASS_NAMES)),
                       label2id={name: i for i, name in enumerate(CLASS_NAMES)})
    return ViTForImageClassification(config)


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
    """Item ``step`` = :func:`training_batch` ``(step, batch_size)``; lets a worker process generate
    the next batches while the model trains (the batches do not depend on the worker)."""

    def __init__(self, steps: int, batch_size: int, low_res_steps: int):
        self.steps, self.batch_size, self.low_res_steps = steps, batch_size, low_res_steps

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        return training_batch(step, self.batch_size, crop=step < self.low_res_steps)


def _single_threaded_worker(_):
    torch.set_num_threads(1)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def accuracy(model, split: str, n: int, seed: int = EVAL_SEED, batch_size: int = 100) -> float:
    """Top-1 accuracy of ``model`` on ``n`` scenes of ``split`` with ``seed``."""
    model.eval()
    data = SceneDataset(split, n=n, seed=seed)
    correct = 0
    for start in range(0, n, batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, n))]
        logits = model(pixel_values=torch.stack([it["pixel_values"] for it in items])).logits
        correct += (logits.argmax(-1) == torch.tensor([it["label"] for it in items])).sum().item()
    return correct / n


def train(steps: int, batch_size: int, lr: float, warmup: int, weight_decay: float,
          label_smoothing: float, seed: int, log_every: int, low_res_steps: int):
    model = build_model(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    model.train()
    running_loss, running_correct = 0.0, 0
    batches = torch.utils.data.DataLoader(TrainingStream(steps, batch_size, low_res_steps), batch_size=None,
                                          num_workers=1, prefetch_factor=4,
                                          worker_init_fn=_single_threaded_worker)
    for step, (pixels, labels) in enumerate(batches):
        low_res = step < low_res_steps
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup)
        logits = model(pixel_values=pixels, interpolate_pos_encoding=low_res).logits
        loss = loss_fn(logits, labels)
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
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--low-res-fraction", type=float, default=0.8,
                        help="fraction of the steps trained at 112x112")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--eval-n", type=int, default=600, help="scenes per split to evaluate")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is several times faster than 2 on a shared CPU; "
                             "use 2 on an idle machine)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the model saved in --out (e.g. after the hard or background "
                             "split changed) and update its manifest; no training")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.evaluate_only:
        from transformers import ViTForImageClassification

        model = ViTForImageClassification.from_pretrained(args.out, local_files_only=True).eval()
        manifest = json.loads((args.out / "manifest.json").read_text())
    else:
        low_res_steps = round(args.low_res_fraction * args.steps)
        start = time.perf_counter()
        model = train(args.steps, args.batch_size, args.lr, args.warmup, args.weight_decay,
                      args.label_smoothing, args.seed, args.log_every, low_res_steps)
        manifest = training_manifest(args, low_res_steps, time.perf_counter() - start, model)
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(args.out, safe_serialization=True)
        default_processor().save_pretrained(args.out)
    scores = {split: accuracy(model, split, args.eval_n) for split in ("standard", "hard", "background")}
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


def training_manifest(args, low_res_steps, seconds, model):
    """What was trained, how, and how long it took (the evaluation is added by :func:`main`)."""
    return {
        "model": "ViTForImageClassification",
        "architecture": ARCHITECTURE,
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
