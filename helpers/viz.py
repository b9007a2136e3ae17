"""One consistent look for every figure of the course: images, heatmap overlays, signed relevance,
grids of samples x methods, top-k bars, confidence and calibration plots, and saving.

Explanation methods return raw maps (any scale, any sign; see the explanation contract).
Normalisation and colour are decided here and only here:

- :func:`overlay` shows an unsigned map over the image, min-max normalised *per map* to [0, 1]
  (only the ranking of patches is comparable across methods, not the scale);
- :func:`signed_map` shows a signed map (LRP) with a centred diverging colormap and symmetric limits
  ``[-v, v]``, ``v`` = the 99th percentile of ``|relevance|`` (so one hot pixel does not wash out
  the rest); red = evidence for the class, blue = against it.

Figures are meant to be readable in a PDF printout: every panel has a title, every heatmap a colour
bar or a shared one, every sample its true class and the model's prediction with its confidence.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

FIGURES = Path(__file__).resolve().parent.parent / "figures"
DPI = 150
HEATMAP_CMAP = "inferno"
SIGNED_CMAP = "bwr"
CORRECT_COLOUR = "#1b7837"
WRONG_COLOUR = "#b2182b"
NEUTRAL_COLOUR = "#8c8c8c"
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "figure.titlesize": 12,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}
mpl.rcParams.update(STYLE)


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def to_image(pixel_values) -> np.ndarray:
    """Undo the processor's normalisation (mean = std = 0.5): ``x * 0.5 + 0.5``, clipped to [0, 1].

    ``[3, H, W]`` -> ``[H, W, 3]``; a batch ``[B, 3, H, W]`` -> ``[B, H, W, 3]``.
    """
    x = _numpy(pixel_values)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"to_image expects [3, H, W] or [B, 3, H, W], got shape {x.shape}")
    return np.clip(np.moveaxis(x, -3, -1) * 0.5 + 0.5, 0.0, 1.0)


def upsample(heatmap, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``[h, w]`` map to ``size`` (e.g. the 14 x 14 patch grid to 224 x 224)."""
    x = torch.as_tensor(_numpy(heatmap))
    if x.ndim != 2:
        raise ValueError(f"upsample expects one map [h, w], got shape {tuple(x.shape)}")
    if tuple(x.shape) == tuple(size):
        return x.numpy()
    return F.interpolate(x[None, None], size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def normalise(heatmap) -> np.ndarray:
    """Min-max normalise one map to [0, 1] for display (a constant map becomes all zeros)."""
    x = _numpy(heatmap)
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _clean(ax, title: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)


def show_image(ax, image, title: str | None = None):
    """Show an image (``[H, W, 3]`` in [0, 1], or processor-normalised ``[3, H, W]``) without axes."""
    image = _as_image(image)
    handle = ax.imshow(image, interpolation="bilinear")
    _clean(ax, title)
    return handle


def _as_image(image) -> np.ndarray:
    arr = _numpy(image)
    return to_image(arr) if arr.ndim == 3 and arr.shape[0] == 3 else arr


def overlay(ax, image, heatmap, alpha: float = 0.6, cmap: str = HEATMAP_CMAP,
            title: str | None = None, colorbar: bool = False):
    """Draw ``heatmap`` (any ``[h, w]``) over a grey copy of ``image`` (so the image's own colours do
    not mix with the colormap): upsampled bilinearly to the image size and min-max normalised to
    [0, 1] (see the module docstring); ``image=None`` shows the map alone. Returns the heatmap's
    AxesImage, so a caller can attach a shared colour bar."""
    if image is None:
        shown, alpha = normalise(heatmap), 1.0
    else:
        image = _as_image(image)
        ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
        shown = normalise(upsample(heatmap, image.shape[:2]))
    handle = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha, interpolation="bilinear")
    _clean(ax, title)
    if colorbar:
        colour_bar(ax, handle, "relative score (min-max)")
    return handle


def colour_bar(ax, handle, label: str):
    """A slim colour bar beside ``ax`` with a label."""
    bar = ax.figure.colorbar(handle, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label)
    return bar


def symmetric_limit(relevance, percentile: float = 99.0) -> float:
    """``v`` for the colour limits ``[-v, v]``: the ``percentile`` of ``|relevance|`` (> 0)."""
    v = float(np.percentile(np.abs(_numpy(relevance)), percentile))
    return v if v > 0 else 1.0


def signed_map(ax, relevance, image=None, title: str | None = None, colorbar: bool = True,
               cmap: str = SIGNED_CMAP, percentile: float = 99.0, limit: float | None = None):
    """Show signed relevance with a centred diverging colormap (red > 0, blue < 0, white = 0) and
    symmetric limits ``[-v, v]`` (``limit``, else :func:`symmetric_limit`). A ``[h, w]`` patch map
    is upsampled to the image size; with ``image`` a faint grey copy of it is drawn underneath."""
    rel = _numpy(relevance)
    if image is not None:
        image = _as_image(image)
        rel = upsample(rel, image.shape[:2])
        ax.imshow(image.mean(axis=-1), cmap="gray", alpha=0.35, interpolation="bilinear")
    v = limit if limit is not None else symmetric_limit(rel, percentile)
    handle = ax.imshow(rel, cmap=cmap, vmin=-v, vmax=v, alpha=0.85 if image is not None else 1.0,
                       interpolation="bilinear")
    _clean(ax, title)
    if colorbar:
        colour_bar(ax, handle, "relevance (red: for, blue: against)")
    return handle


def sample_label(true_name: str, pred_name: str, confidence: float) -> str:
    """Two lines for a sample: ``true: <class>`` and ``pred: <class> (<confidence> %)``, with a tick
    or a cross."""
    mark = "\u2713" if true_name == pred_name else "\u2717"
    return f"true: {_short(true_name)}\npred: {_short(pred_name)} ({100 * confidence:.0f} %) {mark}"


def _short(name: str, width: int = 22) -> str:
    name = name.split(",")[0]
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def heatmap_grid(images, maps, col_titles, row_labels=None, signed: bool = False,
                 title: str | None = None, cell: float = 1.9, image_column: bool = True):
    """A grid: rows = samples (or layers), columns = the image then one map per method / layer / head.

    ``images``: ``[R, 3, H, W]`` (processor-normalised), ``[R, H, W, 3]`` or ``None`` (maps
    alone, without ``image_column``); ``maps``: ``[R, C, h, w]``
    (array, tensor or nested lists); ``col_titles``: C names; ``row_labels``: R strings written
    under each image (e.g. :func:`sample_label`), or left of the first map without the image column.
    Unsigned maps are overlaid (:func:`overlay`, normalised per map, one shared colour bar); signed
    maps use :func:`signed_map` with one limit per row (a colour bar per row). Returns ``(fig, axes)``.
    """
    maps = [[_numpy(m) for m in row] for row in maps]
    n_rows, n_cols = len(maps), len(maps[0])
    if len(col_titles) != n_cols:
        raise ValueError(f"{n_cols} map columns but {len(col_titles)} column titles")
    first = 1 if image_column else 0
    fig, axes = plt.subplots(n_rows, n_cols + first,
                             figsize=(cell * (n_cols + first) + 0.8, cell * n_rows + 0.6),
                             squeeze=False, layout="constrained")
    for r in range(n_rows):
        if image_column:
            show_image(axes[r, 0], images[r], title="image" if r == 0 else None)
        if row_labels is not None:
            label_ax = axes[r, 0]
            (label_ax.set_xlabel if image_column else label_ax.set_ylabel)(row_labels[r], fontsize=8)
        limit = symmetric_limit(np.stack(maps[r])) if signed else None
        for c in range(n_cols):
            ax = axes[r, c + first]
            col_title = col_titles[c] if r == 0 else None
            image = None if images is None else images[r]
            if signed:
                handle = signed_map(ax, maps[r][c], image=image, title=col_title, colorbar=False,
                                    limit=limit)
            else:
                handle = overlay(ax, image, maps[r][c], title=col_title)
        if signed:
            fig.colorbar(handle, ax=axes[r, first:], fraction=0.02, pad=0.01, label="relevance")
    if not signed:
        fig.colorbar(handle, ax=axes[:, first:], fraction=0.02, pad=0.01,
                     label="relative score per map (min-max)")
    if title:
        fig.suptitle(title)
    return fig, axes


def topk_bars(ax, probs, class_names, k: int = 5, true_label: int | None = None,
              title: str | None = None):
    """Horizontal bars of the ``k`` most probable classes (``probs`` over ``class_names``, one
    vector). The true class is green, a wrong top-1 red, the rest grey; if the true class is not in
    the top ``k`` its probability and rank are written under the axis."""
    p = _numpy(probs).ravel()
    order = np.argsort(-p)[:k]
    colours = [CORRECT_COLOUR if i == true_label else NEUTRAL_COLOUR for i in order]
    if order[0] != true_label:
        colours[0] = WRONG_COLOUR
    y = np.arange(len(order))[::-1]
    ax.barh(y, p[order], color=colours)
    ax.set_yticks(y, [_short(class_names[i], 18) for i in order])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for yi, pi in zip(y, p[order]):
        ax.text(min(pi + 0.02, 0.80), yi, f"{100 * pi:.0f} %", va="center", fontsize=8)
    if true_label is not None and true_label not in order:
        rank = int((p > p[true_label]).sum()) + 1
        ax.set_xlabel(f"probability\ntrue: {_short(class_names[true_label], 18)} "
                      f"(rank {rank}, {100 * p[true_label]:.1f} %)", color=CORRECT_COLOUR)
    if title:
        ax.set_title(title)


def confidence_histogram(ax, confidence, correct, bins: int = 20, title: str | None = None):
    """Histograms of the top-1 confidence, correct predictions (green) against incorrect (red),
    each normalised to a density so groups of different sizes compare."""
    confidence, correct = _numpy(confidence), np.asarray(correct, dtype=bool)
    edges = np.linspace(0, 1, bins + 1)
    for mask, colour, name in ((correct, CORRECT_COLOUR, "correct"), (~correct, WRONG_COLOUR, "incorrect")):
        if mask.any():
            ax.hist(confidence[mask], bins=edges, density=True, alpha=0.55, color=colour,
                    label=f"{name} (n={int(mask.sum())}, median {np.median(confidence[mask]):.2f})")
    ax.set_xlabel("confidence of the top-1 class (softmax)")
    ax.set_ylabel("density")
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)


def reliability_diagram(ax, bins, ece: float, title: str | None = None):
    """Accuracy against mean confidence per confidence bin (a :func:`helpers.predict.calibration_bins`
    table), bar width = bin, the diagonal = perfect calibration, bins annotated with their counts."""
    filled = bins[bins["count"] > 0]
    width = float(bins["upper"].iloc[0] - bins["lower"].iloc[0])
    ax.bar(filled["lower"], filled["accuracy"], width=width, align="edge", color="#4393c3",
           edgecolor="white", label="accuracy in bin")
    gap_bottom = np.minimum(filled["accuracy"], filled["confidence"])
    ax.bar(filled["lower"], (filled["confidence"] - filled["accuracy"]).abs(), bottom=gap_bottom,
           width=width, align="edge", fill=False, hatch="///", edgecolor=WRONG_COLOUR, lw=0.8,
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="black", lw=1, label="perfect calibration")
    for _, row in filled.iterrows():
        on_bar = row["accuracy"] > 0.12  # white on the blue bar, black where the bar is too short
        ax.text(row["lower"] + width / 2, 0.01, str(int(row["count"])), ha="center", va="bottom",
                fontsize=6, rotation=90, color="white" if on_bar else "black")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (bin)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ax.set_title(f"{title + ': ' if title else ''}ECE = {100 * ece:.1f} %")


_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


def figure_dir() -> Path:
    """``figures/``, or the git-ignored ``figures/_ci/`` when ``COURSE_SCALE=ci`` (so test runs do
    not overwrite the committed full-size figures)."""
    if os.environ.get("COURSE_SCALE", "full").lower() == "ci":
        folder = FIGURES / "_ci"
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        return folder
    FIGURES.mkdir(parents=True, exist_ok=True)
    return FIGURES


def save(fig, name: str) -> Path:
    """Write ``fig`` to ``figures/<name>.png`` (``DPI`` dpi, tight bounding box) and return the path.

    ``name`` is ``NN_what_it_shows``: the notebook's number first, lower case, no extension.
    """
    if not _NAME.match(name):
        raise ValueError(f"figure name {name!r} must look like '01_what_it_shows' (the notebook's "
                         "two-digit number, then lower-case words joined by '_', no extension)")
    path = figure_dir() / f"{name}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    return path


def live_widgets():
    """The ``ipywidgets`` module when a person can use the controls, else None (and says why).

    Batch runs (``make run`` and ``make test`` set ``COURSE_BATCH=1``) get None: nbconvert can
    deadlock on ``ipywidgets.interact`` (jupyter/nbconvert#1921, #2029), and every explorer draws
    its default view statically first, so nothing is lost.
    """
    if os.environ.get("COURSE_BATCH") == "1":
        print("Batch run: the live controls are skipped; the static view above is their default.")
        return None
    try:
        import ipywidgets
    except ImportError:
        print("ipywidgets is not installed: the static view above is the explorer's default.")
        return None
    return ipywidgets
