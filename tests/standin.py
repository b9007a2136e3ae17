"""Local stand-ins for the course's real world, built offline, so CI can rehearse it.

The real world is ``google/vit-base-patch16-224`` from the Hugging Face hub and the ImageNet-A
archive; neither can be reached from CI. This script builds, in a folder ``ROOT``:

- ``ROOT/imagenet-a.tar``: an ImageNet-A-shaped archive -- ``imagenet-a/README.txt`` and the 200
  class folders of ``data/imagenet_a_classes.tsv`` with 2-3 seeded images each, of varied sizes
  (84 to 1600 px on the long side, varied aspect ratios) and with the real archive's oddities:
  greyscale and CMYK JPEGs, PNGs under a ``.jpg`` name, file names with spaces, commas and
  apostrophes. Each class has its own colours and shapes, so features differ between classes.
- ``ROOT/hf/hub/models--google--vit-base-patch16-224/``: a Hugging Face hub cache snapshot in the
  standard layout (``refs/main`` -> ``snapshots/<commit>/<file>``, relative symlinks into
  ``blobs/``) with the real repo's files: ``config.json`` (1000 ImageNet labels),
  ``preprocessor_config.json`` in the old ``ViTFeatureExtractor`` format, ``model.safetensors``
  with the checkpoint's original (transformers 4.x) key names, ``README.md``, ``.gitattributes``.
  Small dimensions by default (the 14x14 grid of ViT-B/16 at 224 px), ViT-B/16's on request.
  Random, seeded weights with a classifier fitted so that about a third of the stand-in images
  are classified correctly under the ImageNet-A protocol (arg-max over the 200 classes).
- In the same hub cache, snapshots of the other hub models the course explains (notebook 06):
  ``facebook/deit-tiny-patch16-224`` (a ``ViTForImageClassification``),
  ``facebook/deit-base-distilled-patch16-224`` (``DeiTForImageClassificationWithTeacher``) and
  ``facebook/dinov2-small-imagenet1k-1-layer`` (``Dinov2ForImageClassification``: 518 px, patch 14,
  ImageNet mean/std, resize 256 + crop 224, bicubic), each with its repo's configuration fields,
  preprocessing and transformers 4.x key names, 1000 labels, and random seeded weights (small
  dimensions by default; the classifier is not fitted).
- ``ROOT/cifar10/``: a local copy of the ``uoft-cs/cifar10`` dataset repo's layout (``README.md``
  with its features, ``plain_text/{train,test}-00000-of-00001.parquet`` with ``img`` and ``label``
  columns, 10 classes) holding small seeded 32x32 drawings, which notebook 07 loads through
  ``datasets.load_dataset`` as it loads the real one.
- ``ROOT/data/``: an empty folder into which the course "downloads" and extracts the archive.
- ``ROOT/env.sh``: the environment that runs the course's real world against these stand-ins.

Usage::

    python tests/standin.py ROOT [--dims small|base]     # prints the `export` lines
    eval "$(python tests/standin.py /tmp/standin)"

or ``build(root, dims)`` from Python, which returns that environment as a dict.
Everything is deterministic: the same ``seed`` gives the same archive (MD5) and the same weights.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ID = "google/vit-base-patch16-224"
REPO_FOLDER = "models--" + REPO_ID.replace("/", "--")
CLASS_TABLE = Path(__file__).resolve().parent.parent / "data" / "imagenet_a_classes.tsv"
SEED = 0
MARKER = ".standin"  # marks ROOT as a stand-in folder: only such a folder is ever cleaned

DIMS = {
    "small": {"hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
              "intermediate_size": 256},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072},
}
IMAGE_SIZE, PATCH_SIZE, CHANNELS = 224, 16, 3

# The fraction of stand-in images the fitted classifier gets right (ImageNet-A protocol): the fit
# aims at TARGET_CORRECT and the build fails outside CORRECT_RANGE.
TARGET_CORRECT = 1 / 3
CORRECT_RANGE = (0.25, 0.45)
# The fitted rows give logits ``LOGIT_SCALE * cos(feature, anchor) * |feature| / median|feature|``
# (centred features): confidences spread over (0, 1) rather than piling up at 0 or 1.
LOGIT_SCALE = 12.0
# A share of the correct images gets a decoy row outside the 200 classes, DECOY_GAIN times as
# strong as the true row: they are wrong under the naive 1000-way arg-max.
DECOY_SHARE, DECOY_GAIN = 0.15, 1.1

# Archive: images a class, long-side range, the share of big images (simple content, compresses
# well) and the oddities, by running image number i (every Nth image, starting at the offset).
PER_CLASS = (2, 3)
LONG_SIDE = (84, 1600)
SMALL_LONG_SIDE_MAX = 512
BIG_SHARE = 0.05
GREY_EVERY, GREY_AT = 37, 3
CMYK_EVERY, CMYK_AT = 41, 17
PNG_EVERY, PNG_AT = 97, 50
COMMA_EVERY, COMMA_AT = 61, 20
TAR_MTIME = 1_562_889_600  # 2019-07-12, the month ImageNet-A was published


# --- classes and labels ---------------------------------------------------------------------

def imagenet_a_table(table: str | Path = CLASS_TABLE) -> list[tuple[str, int, str]]:
    """The 200 ImageNet-A classes in label order: ``(wnid, index_in_1k, class_name)``."""
    with open(table, newline="", encoding="utf-8") as file:
        return [(row["wnid"], int(row["index_in_1k"]), row["class_name"])
                for row in csv.DictReader(file, delimiter="\t")]


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names of the head: torchvision's, with the ImageNet-A table's
    (longer, WordNet-style) names at the 200 ImageNet-A indices."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    labels = list(_IMAGENET_CATEGORIES)
    assert len(labels) == 1000, len(labels)
    for _, index, name in imagenet_a_table():
        labels[index] = name
    return labels


# --- the ImageNet-A-shaped archive ----------------------------------------------------------

def _class_style(class_idx: int, seed: int) -> dict:
    """The look of a class: colours, a shape, where it sits and how big it is."""
    rng = np.random.default_rng([seed, 1, class_idx])
    return {"background": rng.integers(0, 256, (2, 3)), "colours": rng.integers(0, 256, (2, 3)),
            "shape": int(rng.integers(0, 5)), "angle": rng.uniform(0, 2 * math.pi),
            "centre": rng.uniform(0.3, 0.7, 2), "extent": rng.uniform(0.25, 0.5),
            "stripes": int(rng.integers(2, 7))}


def _long_side(i: int, rng: np.random.Generator) -> int:
    """Image ``i``'s long side: the extremes first, then mostly small, a few big ones."""
    if i == 0:
        return LONG_SIDE[0]
    if i == 1:
        return LONG_SIDE[1]
    if rng.random() < BIG_SHARE:
        return int(rng.integers(900, LONG_SIDE[1] + 1))
    low, high = math.log(LONG_SIDE[0]), math.log(SMALL_LONG_SIDE_MAX)
    return int(round(math.exp(rng.uniform(low, high))))


def _draw(style: dict, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """An RGB picture of a class: a two-colour gradient, the class's shape (jittered), a second
    smaller shape, smooth blotches and fine noise. Big pictures are drawn at most
    :data:`SMALL_LONG_SIDE_MAX` px wide and scaled up (smooth, so they compress well)."""
    full = (width, height)
    shrink = min(1.0, SMALL_LONG_SIDE_MAX / max(full))
    width, height = max(1, round(width * shrink)), max(1, round(height * shrink))
    angle = style["angle"] + rng.normal(0, 0.3)
    along_x = (np.arange(width, dtype=np.float32) / width - 0.5) * math.cos(angle)
    along_y = (np.arange(height, dtype=np.float32) / height - 0.5) * math.sin(angle)
    t = np.clip(along_y[:, None] + along_x[None, :] + 0.5, 0, 1)[..., None]
    bg0, bg1 = style["background"].astype(np.float32)
    pixels = bg0 + t * (bg1 - bg0)
    # Smooth blotches: a coarse random grid, upsampled.
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    pixels += np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC),
                         dtype=np.float32) * 0.25 - 32
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(image)
    side = min(width, height)
    cx, cy = (style["centre"] + rng.normal(0, 0.06, 2)) * (width, height)
    r = side * style["extent"] * rng.uniform(0.8, 1.2)
    colour = tuple(int(v) for v in np.clip(style["colours"][0] + rng.normal(0, 12, 3), 0, 255))
    box = [cx - r, cy - r, cx + r, cy + r]
    shape = style["shape"]
    if shape == 0:
        draw.ellipse(box, fill=colour)
    elif shape == 1:
        draw.rectangle([cx - r, cy - 0.6 * r, cx + r, cy + 0.6 * r], fill=colour)
    elif shape == 2:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    elif shape == 3:
        for k in range(style["stripes"]):
            x0 = cx - r + 2 * r * k / style["stripes"]
            draw.rectangle([x0, cy - r, x0 + r / style["stripes"], cy + r], fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(1, int(r / 3)))
    second = tuple(int(v) for v in style["colours"][1])
    sx, sy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    sr = side * rng.uniform(0.05, 0.15)
    draw.rectangle([sx - sr, sy - sr, sx + sr, sy + sr], fill=second)

    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-9, 10, (height, width, 3),
                                                             dtype=np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return image if shrink == 1.0 else image.resize(full, Image.Resampling.BILINEAR)


def _file_name(i: int, rng: np.random.Generator, names: list[str]) -> str:
    """A name like the real archive's ``0.000116_digital clock _ digital clock_0.865662.jpg``:
    a score, what a classifier said (once in a while the whole WordNet name, with its commas) and
    its confidence."""
    said = names[int(rng.integers(len(names)))]
    if i % COMMA_EVERY == COMMA_AT:
        said = next(n for n in names[int(rng.integers(len(names))):] + names if ", " in n)
    else:
        said = said.split(", ")[0]
    return f"{rng.uniform(0, 0.01):.6f}_{said} _ {said}_{rng.uniform(0.3, 1):.6f}.jpg"


def _encode(image: Image.Image, i: int, rng: np.random.Generator) -> bytes:
    """The file's bytes: mostly an RGB JPEG; every so often a greyscale or CMYK JPEG, or a PNG
    (RGB, or palette every other time) that keeps its ``.jpg`` name."""
    out = io.BytesIO()
    quality = int(rng.integers(70, 93))
    if i % PNG_EVERY == PNG_AT:
        if (i // PNG_EVERY) % 2 == 1:
            image = image.quantize(64, method=Image.Quantize.FASTOCTREE)
        image.save(out, "PNG")
    elif i % GREY_EVERY == GREY_AT:
        image.convert("L").save(out, "JPEG", quality=quality)
    elif i % CMYK_EVERY == CMYK_AT:
        image.convert("CMYK").save(out, "JPEG", quality=quality)
    else:
        image.save(out, "JPEG", quality=quality)
    return out.getvalue()


ARCHIVE_README = """\
ImageNet-A stand-in (generated; not the real data set)

Same layout as the official archive of Hendrycks et al. (2021), "Natural Adversarial Examples":
imagenet-a/<wnid>/<file>.jpg for the 200 ImageNet-A classes, in the class order of the official
evaluation code. The pictures are seeded drawings (a colour gradient and a shape per class, with
noise), 2-3 per class, made by the course's tests/standin.py so that CI can rehearse downloading,
verifying, extracting and reading the real archive. Some files are greyscale or CMYK JPEGs and some
are PNGs under a .jpg name, as in the real archive.
"""


def archive_members(seed: int = SEED) -> dict[str, bytes]:
    """The archive's files, ``{path inside the archive: bytes}``; nothing random but ``seed``."""
    table = imagenet_a_table()
    names = [name for _, _, name in table]
    members = {"imagenet-a/README.txt": ARCHIVE_README.encode()}
    i = 0
    for class_idx, (wnid, _, _) in enumerate(table):
        style = _class_style(class_idx, seed)
        rng = np.random.default_rng([seed, 2, class_idx])
        for _ in range(int(rng.integers(PER_CLASS[0], PER_CLASS[1] + 1))):
            long_side = _long_side(i, rng)
            ratio = math.exp(rng.uniform(math.log(0.5), math.log(1.0)))
            short_side = max(8, int(round(long_side * ratio)))
            size = (long_side, short_side) if rng.random() < 0.6 else (short_side, long_side)
            data = _encode(_draw(style, *size, rng), i, rng)
            path = f"imagenet-a/{wnid}/{_file_name(i, rng, names)}"
            assert path not in members, path
            members[path] = data
            i += 1
    return members


def _tar_info(name: str, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
    """A member header with fixed owner, mode and time, so the archive is byte-for-byte
    reproducible."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
    info.mode, info.size, info.mtime = (0o755 if folder else 0o644), size, TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(path: str | Path, seed: int = SEED) -> tuple[Path, int, str]:
    """Write the ImageNet-A-shaped archive to ``path``; return ``(path, size in bytes, MD5)``."""
    path = Path(path)
    members = archive_members(seed)
    folders = sorted({p.rsplit("/", 1)[0] for p in members})
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for folder in folders:
            tar.addfile(_tar_info(folder, folder=True))
        for name in sorted(members):
            tar.addfile(_tar_info(name, len(members[name])), io.BytesIO(members[name]))
    return path, path.stat().st_size, _md5(path)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- the model ------------------------------------------------------------------------------

def vit_config(dims: str = "small") -> dict:
    """``config.json`` with the real repo's fields and labels, at the stand-in's dimensions."""
    labels = imagenet_labels()
    return {
        "architectures": ["ViTForImageClassification"],
        "attention_probs_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": DIMS[dims]["hidden_size"],
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "image_size": IMAGE_SIZE,
        "initializer_range": 0.02,
        "intermediate_size": DIMS[dims]["intermediate_size"],
        "label2id": {name: i for i, name in enumerate(labels)},
        "layer_norm_eps": 1e-12,
        "model_type": "vit",
        "num_attention_heads": DIMS[dims]["num_attention_heads"],
        "num_channels": CHANNELS,
        "num_hidden_layers": DIMS[dims]["num_hidden_layers"],
        "patch_size": PATCH_SIZE,
        "qkv_bias": True,
        "transformers_version": "4.13.0.dev0",
    }


PREPROCESSOR_CONFIG = {"do_normalize": True, "do_resize": True,
                       "feature_extractor_type": "ViTFeatureExtractor",
                       "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                       "resample": 2, "size": 224}


def init_weights(dims: str = "small", seed: int = SEED) -> dict:
    """Seeded random weights under the checkpoint's original (transformers 4.x) key names.

    Linear and convolution weights are ``N(0, gain^2 / fan_in)``: with unit gain every block adds a
    comparable signal to the residual stream, so the CLS token depends on the image; q and k get a
    gain of 1.5, so attention logits have a spread of about 2 and attention maps are peaked rather
    than uniform (HF's own init, std 0.02, makes them nearly uniform at these widths). Biases and
    LayerNorms are perturbed a little, as a trained checkpoint's are. The classifier is zero here
    (:func:`fit_classifier` sets it).
    """
    import torch

    hidden = DIMS[dims]["hidden_size"]
    inner = DIMS[dims]["intermediate_size"]
    grid = (IMAGE_SIZE // PATCH_SIZE) ** 2
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def linear(prefix, n_out, n_in, gain=1.0):
        weights[prefix + ".weight"] = normal(n_out, n_in, std=gain / math.sqrt(n_in))
        weights[prefix + ".bias"] = normal(n_out, std=0.02)

    def layer_norm(prefix):
        weights[prefix + ".weight"] = 1 + normal(hidden, std=0.1)
        weights[prefix + ".bias"] = normal(hidden, std=0.05)

    fan_in = CHANNELS * PATCH_SIZE ** 2
    weights = {
        "vit.embeddings.cls_token": normal(1, 1, hidden, std=0.5),
        "vit.embeddings.position_embeddings": normal(1, grid + 1, hidden, std=0.2),
        "vit.embeddings.patch_embeddings.projection.weight":
            normal(hidden, CHANNELS, PATCH_SIZE, PATCH_SIZE, std=2 / math.sqrt(fan_in)),
        "vit.embeddings.patch_embeddings.projection.bias": normal(hidden, std=0.02),
    }
    for i in range(DIMS[dims]["num_hidden_layers"]):
        p = f"vit.encoder.layer.{i}"
        layer_norm(f"{p}.layernorm_before")
        linear(f"{p}.attention.attention.query", hidden, hidden, gain=1.5)
        linear(f"{p}.attention.attention.key", hidden, hidden, gain=1.5)
        linear(f"{p}.attention.attention.value", hidden, hidden)
        linear(f"{p}.attention.output.dense", hidden, hidden)
        layer_norm(f"{p}.layernorm_after")
        linear(f"{p}.intermediate.dense", inner, hidden)
        linear(f"{p}.output.dense", hidden, inner)
    layer_norm("vit.layernorm")
    weights["classifier.weight"] = torch.zeros(1000, hidden)
    weights["classifier.bias"] = torch.zeros(1000)
    return weights


def safetensors_bytes(weights: dict) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in weights.items()}, metadata={"format": "pt"})


def load_checked(folder: str | Path):
    """``ViTForImageClassification.from_pretrained(folder)`` (eager attention, eval mode), asserting
    that every weight was in the file and every weight of the file was used."""
    from transformers import ViTForImageClassification
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model, info = ViTForImageClassification.from_pretrained(
            str(folder), attn_implementation="eager", use_safetensors=True,
            local_files_only=True, output_loading_info=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise RuntimeError(f"loading {folder} was not clean: {problems}")
    return model.eval()


def features(model, folder: Path, batch_size: int = 32):
    """What the classifier sees (the final LayerNorm of the CLS token) for every image of the
    ImageNet-A folder, read by the course's own dataset -> ``(features [N, H], class_idx [N])``."""
    import torch
    from torch.utils.data import DataLoader

    from helpers.data import ImageNetA

    dataset = ImageNetA(folder)
    seen = []
    hook = model.classifier.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    labels = []
    try:
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collate):
                model(pixel_values=batch["pixel_values"])
                labels.append(batch["class_idx"])
    finally:
        hook.remove()
    if dataset.skipped:
        raise RuntimeError(f"the course could not read stand-in images: {dataset.skipped}")
    cls = torch.cat(seen)
    if cls.dim() == 3:  # the classifier got every token: keep CLS
        cls = cls[:, 0]
    return cls.double(), torch.cat(labels)


def fit_classifier(feats, class_idx, head_indices, hidden: int, seed: int = SEED):
    """Classifier rows so that about :data:`TARGET_CORRECT` of the images are right.

    Features are centred (``g = f - mean``). Images are visited in a seeded order; each one whose
    class has no row yet becomes that class's *anchor*: the class's row is set to
    ``s * g_a / |g_a|`` and its bias to ``-row . mean``, so the class's logit is ``s * |g| *
    cos(g, g_a)``. An anchor is always right; other images are right when their nearest anchor
    (by cosine) is of their own class. Anchors are added until the fraction right (arg-max over
    the 200 classes) reaches the target. A share (:data:`DECOY_SHARE`) of the correct images
    then gets a decoy row outside the 200 classes that outscores their own (wrong under the
    naive 1000-way arg-max only). Other rows are small and random (std 0.02).
    Returns ``(weight [1000, H], bias [1000], fraction right)``.
    """
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    weight = torch.randn(1000, hidden, generator=g, dtype=torch.float64) * 0.02
    bias = torch.zeros(1000, dtype=torch.float64)
    head = torch.as_tensor(list(head_indices))
    mean = feats.mean(0)
    centred = feats - mean
    scale = LOGIT_SCALE / centred.norm(dim=1).median()
    logits = feats @ weight[head].T  # [N, 200], kept up to date column by column
    anchored = set()
    for i in torch.randperm(len(feats), generator=g).tolist():
        c = int(class_idx[i])
        if c in anchored:
            continue
        anchored.add(c)
        row = scale * centred[i] / centred[i].norm()
        weight[head[c]], bias[head[c]] = row, -(row @ mean)
        logits[:, c] = feats @ row + bias[head[c]]
        right = logits.argmax(1) == class_idx
        if right.double().mean().item() >= TARGET_CORRECT:
            break
    # Decoys: rows of classes outside ImageNet-A that beat the true class of some correct images,
    # so that the naive arg-max over all 1000 classes scores lower than the protocol, as it does
    # for the real model.
    others = torch.as_tensor(sorted(set(range(1000)) - set(head.tolist())))
    right_images = right.nonzero().flatten()
    chosen = right_images[torch.randperm(len(right_images), generator=g)]
    chosen = chosen[:int(DECOY_SHARE * len(chosen))]
    decoys = others[torch.randperm(len(others), generator=g)[:len(chosen)]]
    for i, c in zip(chosen.tolist(), decoys.tolist()):
        row = DECOY_GAIN * scale * centred[i] / centred[i].norm()
        weight[c], bias[c] = row, -(row @ mean)
    return weight.float(), bias.float(), right.double().mean().item()


# --- the hub cache --------------------------------------------------------------------------

GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in (
    "*.7z", "*.arrow", "*.bin", "*.bin.*", "*.bz2", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.model", "*.msgpack", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pt", "*.pth",
    "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tflite", "*.tgz", "*.xz", "*.zip",
    "*.zstandard", "*tfevents*"))

MODEL_README = """\
---
license: apache-2.0
tags:
- vision
- image-classification
datasets:
- imagenet-1k
- imagenet-21k
---

# Vision Transformer (stand-in for google/vit-base-patch16-224)

Generated by the course's `tests/standin.py` so that CI can rehearse loading
`google/vit-base-patch16-224` without the network. Same files, configuration fields, label set,
preprocessing and checkpoint key names as the real repository; random, seeded weights of
{dims} dimensions ({hidden} hidden, {layers} layers, {heads} heads, patch 16 at 224 px). The
classifier is fitted to the ImageNet-A stand-in archive so that about a third of its images are
classified correctly. It knows nothing about real images.
"""

LFS_FILES = {"model.safetensors", "pytorch_model.bin"}


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_hub_cache(hub_cache: str | Path, files: dict[str, bytes],
                    repo_folder: str = REPO_FOLDER) -> Path:
    """Put ``files`` in a Hugging Face hub cache as the hub client does; return the snapshot.

    ``<hub_cache>/<repo_folder>/blobs/<id>`` holds each file under its hub id (SHA-256 for LFS
    files, the git blob SHA-1 otherwise), ``snapshots/<commit>/<name>`` is a relative symlink to
    it and ``refs/main`` holds the commit (a 40-hex id derived from the files).
    """
    repo = Path(hub_cache) / repo_folder
    if repo.exists():
        shutil.rmtree(repo)
    ids = {name: hashlib.sha256(data).hexdigest() if name in LFS_FILES else _git_blob_sha1(data)
           for name, data in files.items()}
    commit = hashlib.sha1("".join(f"{name} {ids[name]}\n" for name in sorted(files)).encode()
                          ).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name, data in files.items():
        blob = repo / "blobs" / ids[name]
        blob.write_bytes(data)
        link = snapshot / name
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


# --- the other hub models -------------------------------------------------------------------

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# DeiT's repos keep the old feature-extractor format: resize the short side to 256, crop 224.
DEIT_PREPROCESSOR = {"crop_size": 224, "do_center_crop": True, "do_normalize": True,
                     "do_resize": True, "feature_extractor_type": "DeiTFeatureExtractor",
                     "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": 3,
                     "size": 256}
# What transformers' convert_dinov2_to_hf.py saves: BitImageProcessor(size={"shortest_edge": 256},
# bicubic, ImageNet mean/std) with its default 224x224 centre crop.
DINOV2_PREPROCESSOR = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                       "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                       "do_resize": True, "image_mean": IMAGENET_MEAN,
                       "image_processor_type": "BitImageProcessor", "image_std": IMAGENET_STD,
                       "resample": 3, "rescale_factor": 0.00392156862745098,
                       "size": {"shortest_edge": 256}}
_VIT_FIELDS = {"attention_probs_dropout_prob": 0.0, "hidden_act": "gelu",
               "hidden_dropout_prob": 0.0, "image_size": 224, "initializer_range": 0.02,
               "layer_norm_eps": 1e-12, "num_channels": 3, "patch_size": 16, "qkv_bias": True}
# repo id -> its class, configuration fields (dimensions apart), dimensions and preprocessing.
EXTRA_MODELS = {
    "facebook/deit-tiny-patch16-224": {
        "class": "ViTForImageClassification",
        "config": {**_VIT_FIELDS, "model_type": "vit", "transformers_version": "4.13.0.dev0"},
        "dims": {"small": {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3,
                           "intermediate_size": 192},
                 "base": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3,
                          "intermediate_size": 768}},
        "preprocessor": DEIT_PREPROCESSOR},
    "facebook/deit-base-distilled-patch16-224": {
        "class": "DeiTForImageClassificationWithTeacher",
        # main has pytorch_model.bin only (the safetensors copy waits in the bot's pull request)
        "weights": "pytorch_model.bin",
        "config": {**_VIT_FIELDS, "encoder_stride": 16, "model_type": "deit",
                   "transformers_version": "4.13.0.dev0"},
        "dims": {"small": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                           "intermediate_size": 256},
                 "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                          "intermediate_size": 3072}},
        "preprocessor": DEIT_PREPROCESSOR},
    "facebook/dinov2-small-imagenet1k-1-layer": {
        "class": "Dinov2ForImageClassification",
        "config": {"attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0, "hidden_act": "gelu",
                   "hidden_dropout_prob": 0.0, "image_size": 518, "initializer_range": 0.02,
                   "layer_norm_eps": 1e-06, "layerscale_value": 1.0, "mlp_ratio": 4,
                   "model_type": "dinov2", "num_channels": 3, "patch_size": 14, "qkv_bias": True,
                   "torch_dtype": "float32", "transformers_version": "4.32.0.dev0",
                   "use_swiglu_ffn": False},
        "dims": {"small": {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 3},
                 "base": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6}},
        "preprocessor": DINOV2_PREPROCESSOR},
}


def extra_config(repo_id: str, dims: str = "small") -> dict:
    """``config.json`` of one of :data:`EXTRA_MODELS` at the stand-in's dimensions."""
    spec = EXTRA_MODELS[repo_id]
    labels = imagenet_labels()
    config = {**spec["config"], **spec["dims"][dims], "architectures": [spec["class"]],
              "id2label": {str(i): name for i, name in enumerate(labels)},
              "label2id": {name: i for i, name in enumerate(labels)}}
    return dict(sorted(config.items()))


def seeded_weights(model, seed: int = SEED) -> None:
    """Random, seeded weights in place, as :func:`init_weights` draws them for the ViT-B/16
    stand-in but found by module type, so they fit any of the classes: linear and convolution
    weights ``N(0, gain^2 / fan_in)`` (gain 1.5 for queries and keys, so attention is peaked, 2
    for the patch embedding), LayerNorms and layer scales near 1, biases near 0, CLS and
    distillation tokens ``N(0, 0.5^2)``, position embeddings ``N(0, 0.2^2)``, the mask token 0."""
    import torch

    g = torch.Generator().manual_seed(seed)

    def normal(tensor, mean, std):
        tensor.copy_(mean + std * torch.randn(tensor.shape, generator=g))

    with torch.no_grad():
        for name, module in sorted(model.named_modules()):
            if isinstance(module, torch.nn.Linear):
                gain = 1.5 if name.endswith(("q_proj", "k_proj")) else 1.0
                normal(module.weight, 0, gain / math.sqrt(module.in_features))
                normal(module.bias, 0, 0.02)
            elif isinstance(module, torch.nn.Conv2d):
                normal(module.weight, 0, 2 / math.sqrt(module.weight[0].numel()))
                normal(module.bias, 0, 0.02)
            elif isinstance(module, torch.nn.LayerNorm):
                normal(module.weight, 1, 0.1)
                normal(module.bias, 0, 0.05)
        for name, parameter in sorted(model.named_parameters()):
            if name.endswith(("cls_token", "distillation_token", "register_tokens")):
                normal(parameter, 0, 0.5)
            elif name.endswith("position_embeddings"):
                normal(parameter, 0, 0.2)
            elif name.endswith("mask_token"):
                parameter.zero_()
            elif name.endswith("lambda1"):
                normal(parameter, 1, 0.1)


def extra_model_files(repo_id: str, dims: str = "small", seed: int = SEED) -> dict[str, bytes]:
    """The repo's files: config, preprocessing, seeded weights saved by transformers (which
    writes the 4.x key names), README and .gitattributes."""
    import torch
    import transformers

    spec = EXTRA_MODELS[repo_id]
    config_json = extra_config(repo_id, dims)
    config = transformers.AutoConfig.for_model(**config_json)
    from transformers.utils import logging as hf_logging

    with torch.random.fork_rng(devices=[]):
        model = getattr(transformers, spec["class"])(config)
    seeded_weights(model, seed)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            model.save_pretrained(scratch, safe_serialization=True)
            weights = (Path(scratch) / "model.safetensors").read_bytes()
        if spec.get("weights") == "pytorch_model.bin":  # same tensors, same key names, pickled
            from safetensors.torch import load

            buffer = io.BytesIO()
            torch.save(dict(sorted(load(weights).items())), buffer)  # load() order varies
            weights = buffer.getvalue()
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    size = spec["dims"][dims]
    return {
        "config.json": json.dumps(config_json, indent=2).encode() + b"\n",
        "preprocessor_config.json": json.dumps(spec["preprocessor"], indent=2).encode() + b"\n",
        spec.get("weights", "model.safetensors"): weights,
        "README.md": EXTRA_README.format(repo_id=repo_id, cls=spec["class"], dims=dims,
                                         hidden=size["hidden_size"],
                                         layers=size["num_hidden_layers"],
                                         heads=size["num_attention_heads"]).encode(),
        ".gitattributes": GITATTRIBUTES.encode(),
    }


EXTRA_README = """\
---
license: apache-2.0
tags:
- vision
- image-classification
datasets:
- imagenet-1k
---

# Stand-in for {repo_id}

Generated by the course's `tests/standin.py` so that CI can rehearse loading `{repo_id}` (a
`{cls}`) without the network. Same files, configuration fields, label set, preprocessing and
checkpoint key names as the real repository; random, seeded weights of {dims} dimensions
({hidden} hidden, {layers} layers, {heads} heads). It knows nothing about real images.
"""


# --- the fine-tuning data set (notebook 07) --------------------------------------------------

CIFAR10_REPO = "uoft-cs/cifar10"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR10_SPLITS = {"train": 40, "test": 20}  # images a class (the real set: 5000 and 1000)
CIFAR10_README = """\
---
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  default: true
dataset_info:
  config_name: plain_text
  features:
  - name: img
    dtype: image
  - name: label
    dtype:
      class_label:
        names:
{names}
---

# Stand-in for uoft-cs/cifar10

Generated by the course's `tests/standin.py`: the real repository's layout, configuration and
columns (`img`: a 32x32 PNG, `label`: one of the 10 CIFAR-10 classes), filled with seeded drawings
(a colour gradient and a shape per class, with noise), {counts}.
"""


def write_cifar10(folder: str | Path, seed: int = SEED) -> Path:
    """The ``uoft-cs/cifar10`` stand-in in ``folder``: README with the features, one parquet file a
    split. Each class has its own look (:func:`_class_style`), so it can be learnt."""
    import datasets

    folder = Path(folder)
    bar = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        _write_cifar10_splits(folder, seed)
    finally:
        if bar:
            datasets.enable_progress_bars()
    names = "".join(f"          '{i}': {name}\n" for i, name in enumerate(CIFAR10_CLASSES))
    counts = ", ".join(f"{n * len(CIFAR10_CLASSES)} {split} images"
                       for split, n in CIFAR10_SPLITS.items())
    (folder / "README.md").write_text(CIFAR10_README.format(names=names.rstrip("\n"),
                                                            counts=counts))
    return folder


def _write_cifar10_splits(folder: Path, seed: int) -> None:
    import datasets

    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(names=CIFAR10_CLASSES)})
    for split_idx, (split, per_class) in enumerate(CIFAR10_SPLITS.items()):
        images, labels = [], []
        for i in range(per_class * len(CIFAR10_CLASSES)):
            label = i % len(CIFAR10_CLASSES)
            rng = np.random.default_rng([seed, 3, split_idx, i])
            images.append(_draw(_class_style(1000 + label, seed), 32, 32, rng))
            labels.append(label)
        part = folder / "plain_text" / f"{split}-00000-of-00001.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict({"img": images, "label": labels}, features=features
                                   ).to_parquet(str(part))


# --- the whole stand-in ---------------------------------------------------------------------

def _prepare_root(root: Path) -> None:
    """Create ``root``, or reuse one this script built (it has the marker); never clean a folder
    that holds anything else."""
    if root.exists() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise FileExistsError(f"{root} is not empty and was not made by {Path(__file__).name}: "
                              "give an empty or a new folder.")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("built by tests/standin.py; the whole folder may be deleted\n")
    for stale in root.glob(".standin-scratch-*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    data = root / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir()


def environment(root: Path, size: int, md5: str) -> dict[str, str]:
    return {
        "HF_HOME": str(root / "hf"),
        "HF_HUB_OFFLINE": "1",
        "COURSE_WORLD": "real",
        "COURSE_DATA_DIR": str(root / "data"),
        "COURSE_IMAGENET_A_URL": (root / "imagenet-a.tar").as_uri(),
        "COURSE_IMAGENET_A_SIZE": str(size),
        "COURSE_IMAGENET_A_MD5": md5,
        "COURSE_FINETUNE_DATA": str(root / "cifar10"),
    }


def shell_exports(env: dict[str, str]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())


def build(root: str | Path, dims: str = "small", seed: int = SEED) -> dict[str, str]:
    """Build the archive, the hub cache, ``data/`` and ``env.sh`` in ``root``; return the
    environment that runs the course's real world against them.

    Order: the archive; its extraction into a scratch folder, whose images (read by the course's
    dataset) give the features the classifier is fitted to; the hub cache. The fraction of images
    classified correctly is checked to lie in :data:`CORRECT_RANGE`. ``root/standin.json`` records
    what was built.
    """
    import torch

    from helpers.data import extract

    if dims not in DIMS:
        raise ValueError(f"dims must be one of {sorted(DIMS)}, got {dims!r}")
    root = Path(root).expanduser().resolve()
    _prepare_root(root)
    archive, size, md5 = write_archive(root / "imagenet-a.tar", seed)

    scratch = Path(tempfile.mkdtemp(prefix=".standin-scratch-", dir=root))
    try:
        folder = extract(archive, scratch / "extracted")
        weights = init_weights(dims, seed)
        model_dir = scratch / "model"
        model_dir.mkdir()
        (model_dir / "config.json").write_text(json.dumps(vit_config(dims)))
        (model_dir / "model.safetensors").write_bytes(safetensors_bytes(weights))
        feats, class_idx = features(load_checked(model_dir), folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    head = [index for _, index, _ in imagenet_a_table()]
    hidden = DIMS[dims]["hidden_size"]
    weights["classifier.weight"], weights["classifier.bias"], _ = fit_classifier(
        feats, class_idx, head, hidden, seed)
    files = {
        "config.json": json.dumps(vit_config(dims), indent=2).encode() + b"\n",
        "preprocessor_config.json": json.dumps(PREPROCESSOR_CONFIG, indent=2).encode() + b"\n",
        "model.safetensors": safetensors_bytes(weights),
        "README.md": MODEL_README.format(dims=dims, hidden=hidden,
                                         layers=DIMS[dims]["num_hidden_layers"],
                                         heads=DIMS[dims]["num_attention_heads"]).encode(),
        ".gitattributes": GITATTRIBUTES.encode(),
    }
    snapshot = write_hub_cache(root / "hf" / "hub", files)
    for repo_id in EXTRA_MODELS:
        write_hub_cache(root / "hf" / "hub", extra_model_files(repo_id, dims, seed),
                        "models--" + repo_id.replace("/", "--"))
    cifar = root / "cifar10"
    if cifar.exists():
        shutil.rmtree(cifar)
    write_cifar10(cifar, seed)

    # The fraction right, through the model as the hub cache holds it (float32).
    model = load_checked(snapshot)
    with torch.no_grad():
        logits = model.classifier(feats.float())
    fraction = (logits[:, head].argmax(1) == class_idx).double().mean().item()
    fraction_1k = (logits.argmax(1) == torch.as_tensor(head)[class_idx]).double().mean().item()
    low, high = CORRECT_RANGE
    if not low <= fraction <= high:
        raise RuntimeError(f"the fitted classifier gets {fraction:.1%} of the stand-in images "
                           f"right, not {low:.0%}-{high:.0%}")

    env = environment(root, size, md5)
    (root / "env.sh").write_text(shell_exports(env))
    (root / "standin.json").write_text(json.dumps({
        "dims": dims, "seed": seed, "images": len(feats), "fraction_correct": fraction,
        "fraction_correct_1k": fraction_1k, "archive_bytes": size, "archive_md5": md5,
        "snapshot": str(snapshot.relative_to(root)),
        "env": env}, indent=1) + "\n")
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to build in (new, empty, or built here before)")
    parser.add_argument("--dims", choices=sorted(DIMS), default="small",
                        help="model dimensions: small (default) or base (ViT-B/16's)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    env = build(args.root, args.dims, args.seed)
    facts = json.loads((Path(env["HF_HOME"]).parent / "standin.json").read_text())
    print(f"# stand-in built in {time.perf_counter() - start:.1f} s: {facts['images']} images, "
          f"archive {facts['archive_bytes']:,} bytes, {args.dims} dims, "
          f"{facts['fraction_correct']:.1%} correct on the 200 classes "
          f"({facts['fraction_correct_1k']:.1%} on all 1000)", file=sys.stderr)
    sys.stdout.write(shell_exports(env))


if __name__ == "__main__":
    main()
