"""Classify a whole dataset once, cache the answers, and pick the samples the later notebooks explain.

The official ImageNet-A protocol (Hendrycks et al. 2021, "Natural Adversarial Examples") scores a
1000-way ImageNet model on the 200 ImageNet-A classes only: the prediction is the arg-max over the
200 logits ``z[head_indices]`` (a mask on the head), not over all 1000. :func:`predict` reports
both: ``pred`` (masked, the protocol) and ``pred_1k`` (naive arg-max over the whole head). In the
offline world the head *is* the dataset's classes (``head_indices = range(K)``), so both agree.

Confidence is the softmax over the logits the prediction was taken from:
``p = softmax(z[head_indices])`` for ``pred``, ``softmax(z)`` for ``pred_1k``.

Cache: ``<data>/cache/<world>/predictions_<key>.csv``, one row per image id, where ``<data>`` is
``$COURSE_DATA_DIR`` or the repository's ``data/`` (:func:`helpers.data.data_root`: on Colab, point
it at Google Drive and the cache survives a restart); :func:`load_or_predict` runs the model only
on the ids not yet in the file. The selection of correct and incorrect samples that notebooks
02-05 explain is ``<data>/cache/<world>/selection.json``.

Precision: predictions run through :func:`helpers.models.inference_precision` (``"auto"``: bfloat16
autocast on CUDA, float32 elsewhere); the precision is part of the cache key, and whatever is later
compared with a cached number (:func:`masked_probs`) must be computed with the same ``precision``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from .data import collate as data_collate, data_root
from .models import inference_precision, resolve_precision
from .world import resolve_world

TOP_K = 5


def cache_dir(world: str | None = None, root=None) -> Path:
    """``<data>/cache/<world>/`` (created): ``<data>`` is ``root``, else ``$COURSE_DATA_DIR``, else
    the repository's ``data/``; ``world`` as :func:`resolve_world` resolves it."""
    folder = data_root(root) / "cache" / resolve_world(world, announce=False, data_dir=root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_atomically(path: Path, write) -> None:
    """``write(partial)`` to a temporary name beside ``path``, then rename it to ``path``: a
    notebook running alongside (``make run``) never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    write(partial)
    os.replace(partial, path)


def masked_logits(logits: torch.Tensor, head_indices) -> torch.Tensor:
    """The logits of the dataset's classes, in dataset order: ``z[:, head_indices]`` -> ``[B, K]``."""
    return logits[:, torch.as_tensor(head_indices, device=logits.device)]


def masked_probs(model, pixel_values: torch.Tensor, head_indices, precision: str = "auto") -> torch.Tensor:
    """``softmax(z[head_indices])`` for a batch: ``[B, K]`` probabilities over the dataset's classes,
    computed in ``precision`` (use the one the cached predictions were made with)."""
    with torch.no_grad(), inference_precision(model.device, precision):
        logits = model(pixel_values=pixel_values.to(model.device)).logits.float()
    return masked_logits(logits, head_indices).softmax(-1).cpu()


# How far a recomputed confidence may drift from the cached one in the same precision: another
# batch composition runs other kernels, and bfloat16 keeps 8 bits of mantissa.
_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 2e-2}


def check_cached(model, pixel_values: torch.Tensor, rows: pd.DataFrame, head_indices,
                 precision: str = "auto") -> torch.Tensor:
    """Check that cached prediction ``rows`` are ``model``'s on ``pixel_values`` and return the
    recomputed ``[N, K]`` probabilities.

    The probabilities are recomputed in the same ``precision`` as :func:`load_or_predict` used.
    In float32 the arg-max must match and each confidence agree to 1e-4; under bfloat16 or float16
    autocast (on a GPU) confidences may drift by the precision's rounding, so arg-maxes are
    compared only where the recomputed top two classes are further apart than that drift. Raises
    ``AssertionError`` naming the first image that disagrees.
    """
    precision = resolve_precision(precision, model.device)
    tolerance = _TOLERANCE[precision]
    probs = masked_probs(model, pixel_values, head_indices, precision)
    top2 = probs.topk(2, dim=-1).values
    decided = ((top2[:, 0] - top2[:, 1]) > tolerance if precision != "fp32"
               else torch.ones(len(probs), dtype=torch.bool))
    cached_pos = torch.tensor(rows["pred_idx"].tolist())
    drift = (probs.max(-1).values - torch.tensor(rows["confidence"].tolist(), dtype=probs.dtype)).abs()
    wrong = (decided & (probs.argmax(-1) != cached_pos)) | (drift > tolerance)
    if wrong.any():
        i = int(wrong.nonzero()[0])
        raise AssertionError(
            f"The cached prediction for {rows['id'].iloc[i]!r} is not this model's ({precision}): "
            f"cached class {int(cached_pos[i])} at {rows['confidence'].iloc[i]:.4f}, recomputed "
            f"class {int(probs[i].argmax())} at {float(probs[i].max()):.4f}. Delete the cache "
            f"folder {cache_dir()} and run again.")
    return probs


def _rows(batch, logits: torch.Tensor, head_indices, class_names, id2label) -> list[dict]:
    """One result row per image of a batch from its ``[B, n_head]`` logits."""
    head = torch.as_tensor(list(head_indices))
    masked = masked_logits(logits, head_indices)
    probs, probs_1k = masked.softmax(-1), logits.softmax(-1)
    conf, pos = probs.max(-1)
    conf_1k, pred_1k = probs_1k.max(-1)
    top = probs.topk(min(TOP_K, probs.shape[1]), dim=-1)
    labels = torch.as_tensor(batch["label"])
    rows = []
    for i in range(len(labels)):
        true_pos, label, pred = int(batch["class_idx"][i]), int(labels[i]), int(head[pos[i]])
        top5 = [int(head[j]) for j in top.indices[i]]
        rows.append({
            "id": str(batch["id"][i]), "label": label, "class_idx": true_pos,
            "class_name": batch["class_name"][i],
            "pred": pred, "pred_idx": int(pos[i]), "pred_name": class_names[int(pos[i])],
            "confidence": float(conf[i]), "p_true": float(probs[i, true_pos]),
            "correct": pred == label, "top5": " ".join(map(str, top5)), "correct_top5": label in top5,
            "pred_1k": int(pred_1k[i]), "pred_1k_name": id2label.get(int(pred_1k[i]), str(int(pred_1k[i]))),
            "confidence_1k": float(conf_1k[i]), "correct_1k": int(pred_1k[i]) == label,
        })
    return rows


# Images per batch that keep a ViT-B/16 busy: a GPU needs large batches under autocast; on a CPU the
# cost per image hardly falls beyond a few dozen and memory grows with the batch.
BATCH_SIZE = {"cuda": 128, "cpu": 32}


def default_batch_size(device) -> int:
    """Images per forward pass on ``device`` (:data:`BATCH_SIZE`; 32 on any other device)."""
    return BATCH_SIZE.get(torch.device(device).type, 32)


def default_workers(dataset) -> int:
    """Worker processes that decode images while the model runs: up to 4 (one core is left to the
    model) for a dataset that reads image files (``reads_files = True``: ImageNet-A's JPEGs), none
    for one that holds its images in memory (the scenes)."""
    import os

    if not getattr(dataset, "reads_files", False):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class _Reported(torch.utils.data.Dataset):
    """``dataset[i]``, or ``{"unreadable": id, "reason": ...}`` where the dataset gave ``None``.

    Decoding in worker processes fills each worker's copy of ``dataset.skipped``, and a worker's
    warnings never reach a notebook. This wrapper carries the path and the reason back to the main
    process instead, where :func:`predict` records them in ``dataset.skipped`` and warns once.
    """

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        import warnings

        index = self.indices[i]
        skipped = getattr(self.dataset, "skipped", {})
        with warnings.catch_warnings():
            if torch.utils.data.get_worker_info() is not None:  # the main process warns instead
                warnings.simplefilter("ignore")
            item = self.dataset[index]
        if item is not None:
            return item
        item_id = getattr(self.dataset, "ids", None)
        item_id = item_id[index] if item_id is not None else str(index)
        return {"unreadable": item_id, "reason": skipped.get(item_id, "unreadable")}


def _reporting_collate(collate):
    def collate_batch(items):
        unreadable = [item for item in items if item is not None and "unreadable" in item]
        batch = collate([None if item is None or "unreadable" in item else item for item in items])
        return batch, [(item["unreadable"], item["reason"]) for item in unreadable]

    return collate_batch


def _record_unreadable(dataset, unreadable) -> None:
    """Report images a worker could not read, as the dataset itself would have (``_skip``)."""
    import warnings

    for item_id, reason in unreadable:
        if hasattr(dataset, "_skip"):
            dataset._skip(item_id, reason)  # warns unless the main process read it (and warned)
        else:
            warnings.warn(f"skipped unreadable image {item_id} ({reason})", stacklevel=3)


def predict(model, dataset, batch_size: int | None = None, device: str | None = None,
            progress: bool | None = None, indices=None, precision: str = "auto",
            num_workers: int | None = None) -> pd.DataFrame:
    """Classify ``dataset`` (or the items at ``indices``) -> one row per image.

    Columns: ``id, label, class_idx, class_name`` (the truth); ``pred`` (head index, arg-max over
    ``dataset.head_indices``), ``pred_idx`` (its dataset class index), ``pred_name``,
    ``confidence`` (softmax over the masked logits), ``p_true``, ``correct``, ``top5`` (masked,
    head indices joined by spaces), ``correct_top5``; ``pred_1k``, ``pred_1k_name``,
    ``confidence_1k``, ``correct_1k`` (naive arg-max over the whole head). Unreadable images (the
    dataset returns ``None``) are dropped and reported in ``dataset.skipped`` with a warning.
    Runs under ``torch.no_grad`` in ``precision`` (:func:`helpers.models.inference_precision`).

    ``batch_size``: images per forward pass (None: :func:`default_batch_size` for the device).
    ``num_workers``: processes decoding images in parallel with the model (None:
    :func:`default_workers`). ``progress``: a progress bar in images, with the rate and the time
    left (None: unless a batch run, :func:`helpers.viz.progress_bar`).
    """
    from .viz import progress_bar

    device = torch.device(device or model.device)
    batch_size = batch_size or default_batch_size(device)
    workers = default_workers(dataset) if num_workers is None else num_workers
    source = _Reported(dataset, range(len(dataset)) if indices is None else indices)
    collate = _reporting_collate(getattr(dataset, "collate", None) or data_collate)
    loader = DataLoader(source, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=collate, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    rows = []
    with torch.no_grad(), inference_precision(device, precision), \
            progress_bar(None, progress, desc="predict", total=len(source), unit="img") as bar:
        for batch, unreadable in loader:
            _record_unreadable(dataset, unreadable)
            if batch is not None:
                pixel_values = batch["pixel_values"].to(device, non_blocking=True)
                logits = model(pixel_values=pixel_values).logits.float().cpu()
                rows += _rows(batch, logits, dataset.head_indices, dataset.class_names, id2label)
            bar.update(len(unreadable) + (0 if batch is None else len(batch["id"])))
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ["id", "label", "class_idx", "class_name", "pred", "pred_idx", "pred_name", "confidence",
           "p_true", "correct", "top5", "correct_top5", "pred_1k", "pred_1k_name", "confidence_1k",
           "correct_1k"]


def model_fingerprint(model) -> str:
    """8 hex digits of a SHA-1 over the classifier head's weights (both heads of a distilled DeiT,
    from the model's backbone adapter): changes when the model is retrained."""
    from .backbones import adapter_for

    digest = hashlib.sha1()
    for name in adapter_for(model).classifiers:
        digest.update(model.get_submodule(name).weight.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:8]


def model_tag(model) -> str:
    """``<model name>-<fingerprint>``, e.g. ``vit-base-patch16-224-1a2b3c4d``."""
    return f"{Path(str(model.config.name_or_path or 'model')).name}-{model_fingerprint(model)}"


def cache_key(model, dataset, precision: str = "fp32") -> str:
    """``<model tag>_<dataset name>_<precision>``, e.g. ``vit-base-patch16-224-1a2b3c4d_imagenet-a_bf16``."""
    data_name = getattr(dataset, "name", None) or getattr(dataset, "split", None) or type(dataset).__name__
    return f"{model_tag(model)}_{data_name}_{precision}".lower().replace(" ", "-")


def dataset_ids(dataset) -> list[str | None]:
    """The id of every item, by index: ``dataset.ids`` if the dataset lists them without loading
    images, else read item by item (``None`` for an unreadable item)."""
    ids = getattr(dataset, "ids", None)
    if ids is None:
        ids = [item and item["id"] for item in map(dataset.__getitem__, range(len(dataset)))]
    return [None if i is None else str(i) for i in ids]


def load_or_predict(model, dataset, world: str | None = None, key: str | None = None,
                    precision: str = "auto", **predict_options) -> pd.DataFrame:
    """:func:`predict`, cached in ``<data>/cache/<world>/predictions_<key>.csv`` by image id.

    Only ids missing from the file are classified (and appended); the rows for ``dataset`` are
    returned in dataset order. ``key`` defaults to :func:`cache_key` (which names the precision).
    Unreadable images have no row (the dataset reports them in ``skipped``).
    """
    precision = resolve_precision(precision, predict_options.get("device") or model.device)
    path = cache_dir(world) / f"predictions_{key or cache_key(model, dataset, precision)}.csv"
    cached = _read_cache(path)
    ids = dataset_ids(dataset)
    known = set(cached["id"])
    missing = [i for i, item_id in enumerate(ids) if item_id is not None and item_id not in known]
    if missing:
        fresh = predict(model, dataset, indices=missing, precision=precision, **predict_options)
        if len(fresh):
            cached = pd.concat([cached, fresh], ignore_index=True) if len(cached) else fresh
            write_atomically(path, lambda partial: cached.to_csv(partial, index=False))
    order = {item_id: n for n, item_id in enumerate(ids)}
    rows = cached[cached["id"].isin(order)].copy()
    return rows.sort_values("id", key=lambda s: s.map(order)).reset_index(drop=True)


_DTYPES = {"id": str, "label": int, "class_idx": int, "class_name": str, "pred": int, "pred_idx": int,
           "pred_name": str, "confidence": float, "p_true": float, "correct": bool, "top5": str,
           "correct_top5": bool, "pred_1k": int, "pred_1k_name": str, "confidence_1k": float,
           "correct_1k": bool}


def _read_cache(path: Path) -> pd.DataFrame:
    """The cached predictions with their proper column types (an empty frame if there are none)."""
    if not path.exists():
        return pd.DataFrame({column: pd.Series(dtype=_DTYPES[column]) for column in COLUMNS})
    return pd.read_csv(path, dtype={"id": str, "top5": str}).astype(_DTYPES)


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Top-1 and top-5 accuracy (in %) of the masked protocol and top-1 of the naive arg-max."""
    n = len(df)
    return pd.DataFrame({
        "protocol": ["dataset classes only (masked arg-max)", "whole head (naive arg-max)"],
        "top-1 %": [100 * df["correct"].mean(), 100 * df["correct_1k"].mean()],
        "top-5 %": [100 * df["correct_top5"].mean(), np.nan],
        "images": [n, n],
    }).set_index("protocol")


def per_class_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy, image count and mean confidence per true class, worst class first."""
    table = df.groupby("class_name").agg(accuracy=("correct", "mean"), images=("correct", "size"),
                                         mean_confidence=("confidence", "mean"))
    return table.sort_values(["accuracy", "mean_confidence"], ascending=[True, False])


def calibration_bins(confidence, correct, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability table and expected calibration error (Guo et al. 2017, "On Calibration of Modern
    Neural Networks"): equal-width confidence bins ``B_m``;
    ``ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|``. Returns ``(bins, ece)``; ``bins`` has
    ``lower, upper, count, accuracy, confidence`` per bin (NaN for empty bins).
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for m in range(n_bins):
        inside = which == m
        rows.append({"lower": edges[m], "upper": edges[m + 1], "count": int(inside.sum()),
                     "accuracy": correct[inside].mean() if inside.any() else np.nan,
                     "confidence": confidence[inside].mean() if inside.any() else np.nan})
    bins = pd.DataFrame(rows)
    filled = bins[bins["count"] > 0]
    ece = float((filled["count"] / len(confidence) * (filled["accuracy"] - filled["confidence"]).abs()).sum())
    return bins, ece


def select_samples(df: pd.DataFrame, n_correct: int, n_incorrect: int, seed: int = 0) -> pd.DataFrame:
    """A seeded selection of ``n_correct`` correct and ``n_incorrect`` incorrect predictions.

    Within each group the rows are shuffled with ``seed`` and taken round-robin over classes (one
    image per class before any class gets a second), so the selection spans many classes.
    Returns the chosen rows with a ``group`` column (``correct`` / ``incorrect``), correct first.
    """
    picked = []
    for group, want in (("correct", n_correct), ("incorrect", n_incorrect)):
        pool = df[df["correct"] == (group == "correct")]
        if len(pool) < want:
            raise ValueError(f"asked for {want} {group} predictions but only {len(pool)} exist; "
                             "lower the number or classify more images")
        shuffled = pool.sample(frac=1.0, random_state=seed)
        turn = shuffled.groupby("class_idx").cumcount()
        chosen = shuffled.assign(_turn=turn.values).sort_values("_turn", kind="stable").head(want)
        picked.append(chosen.drop(columns="_turn").assign(group=group))
    return pd.concat(picked, ignore_index=True)


def save_selection(selection: pd.DataFrame, world: str | None = None, dataset_options: dict | None = None,
                   model=None) -> Path:
    """Write the selection to ``selection.json``: its rows, how to rebuild its dataset
    (``dataset_options`` for :func:`helpers.world.load_dataset`) and the model it was made with."""
    path = cache_dir(world) / "selection.json"
    payload = {"model": model_tag(model) if model is not None else None,
               "dataset": dataset_options or {}, "rows": selection.to_dict(orient="records")}
    write_atomically(path, lambda partial: partial.write_text(json.dumps(payload, indent=1, default=_json_default)))
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def load_selection(world: str | None = None, model=None, processor=None, n_correct: int = 4,
                   n_incorrect: int = 4, seed: int = 0, n_per_class: int | None = None,
                   batch_size: int = 32):
    """The samples chosen in notebook 01 -> ``(rows, pixel_values, dataset)``.

    ``rows``: the selection's prediction rows (``group`` = correct / incorrect); ``pixel_values``:
    ``[N, 3, 224, 224]`` in the same order; ``dataset``: the dataset they come from. If
    ``selection.json`` is missing (notebook 01 not run) or was made with another model than
    ``model``, the selection is made here: classify the adversarial split (``n_per_class`` images
    per class; cached), then :func:`select_samples` with ``n_correct``, ``n_incorrect``, ``seed``.
    """
    from .models import load_model
    from .world import load_dataset

    path = cache_dir(world) / "selection.json"
    payload = json.loads(path.read_text()) if path.exists() else None
    if payload is None or (model is not None and payload.get("model") != model_tag(model)):
        if model is None:
            model, processor = load_model(world=world)
        options = {"split": "adversarial", "n_per_class": n_per_class, "seed": seed}
        dataset = load_dataset(world=world, processor=processor, **options)
        df = load_or_predict(model, dataset, world=world, batch_size=batch_size)
        save_selection(select_samples(df, n_correct, n_incorrect, seed), world, options, model)
        payload = json.loads(path.read_text())
    rows = pd.DataFrame(payload["rows"])
    dataset = load_dataset(world=world, processor=processor, **payload["dataset"])
    try:
        pixel_values = pixel_values_of(dataset, rows["id"])
    except KeyError as missing:
        raise KeyError(f"{missing.args[0]} Delete {path} to select again.") from None
    return rows, pixel_values, dataset


class Samples(NamedTuple):
    """The samples notebooks 02-05 explain (:func:`selected_samples`)."""

    rows: pd.DataFrame  # the prediction rows, correct ones first (column ``group``)
    pixels: torch.Tensor  # [N, 3, H, W] on the model's device
    dataset: object  # the dataset they come from (``head_indices``, ``class_names``)
    predicted: torch.Tensor  # [N] head indices of the predicted classes: what is explained
    true_label: torch.Tensor  # [N] head indices of the true classes
    is_correct: np.ndarray  # [N] bool
    labels: list  # "true: … / pred: … (confidence)" for figures


def selected_samples(model, processor, world: str | None = None, n_correct: int = 4,
                     n_incorrect: int = 4, seed: int = 0, n_per_class: int | None = None) -> Samples:
    """Notebook 01's selection (:func:`load_selection`), on the model's device, checked to be this
    model's predictions (:func:`check_cached`), with what every later notebook needs."""
    from .viz import sample_label

    rows, pixel_values, dataset = load_selection(world, model=model, processor=processor,
                                                 n_correct=n_correct, n_incorrect=n_incorrect,
                                                 seed=seed, n_per_class=n_per_class)
    pixels = pixel_values.to(model.device)
    check_cached(model, pixels, rows, dataset.head_indices)
    return Samples(rows, pixels, dataset, torch.tensor(rows["pred"].tolist()),
                   torch.tensor(rows["label"].tolist()), rows["correct"].to_numpy(dtype=bool),
                   [sample_label(r.class_name, r.pred_name, r.confidence) for r in rows.itertuples()])


def pixel_values_of(dataset, ids) -> torch.Tensor:
    """The images with the given ids, stacked in that order: ``[N, 3, H, W]``."""
    position = {item_id: n for n, item_id in enumerate(dataset_ids(dataset))}
    absent = [i for i in ids if i not in position]
    if absent:
        raise KeyError(f"{len(absent)} ids (e.g. {absent[0]!r}) are not in the dataset.")
    return torch.stack([dataset[position[i]]["pixel_values"] for i in ids])
