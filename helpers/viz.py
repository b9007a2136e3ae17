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
Lines and markers of the methods come from :func:`method_styles` (one colour, marker and line
style per method, the same in every figure); curves that coincide are drawn so that neither hides
the other (:func:`plot_curves`).

Figures are written as compact, reproducible PNGs (:func:`png_bytes`): ``DPI`` dots per inch, a
palette of at most 256 colours without dithering, no metadata. The same figure gives the same
bytes, so re-running a notebook that computes the same numbers changes no file; in Jupyter the
inline figures are the same kind of PNG (``INLINE_DPI``). Batch runs (``COURSE_BATCH=1``: ``make
run``, ``make test``) show no progress bars and no live widgets (:func:`batch_run`).
"""
from __future__ import annotations

import base64
import io
import os
import re
import sys
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image

FIGURES = Path(__file__).resolve().parent.parent / "figures"
DPI = 100  # saved figures: a 10-inch-wide figure is 1000 px, the width GitHub shows
INLINE_DPI = 100  # figures shown in a notebook
PALETTE_COLOURS = 256  # PNGs are quantised to a palette of this many colours (no dithering)
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h"]
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


def to_image(pixel_values, model=None, processor=None) -> np.ndarray:
    """Undo the processor's normalisation: ``x * std + mean``, clipped to [0, 1].

    ``mean``/``std`` are the ``processor``'s if given, else those of ``model``'s family (its
    backbone adapter: 0.5 for ViT, ImageNet's for DeiT and DINOv2), else ViT's 0.5.
    ``[3, H, W]`` -> ``[H, W, 3]``; a batch ``[B, 3, H, W]`` -> ``[B, H, W, 3]``.
    """
    from .backbones import normalisation

    x = _numpy(pixel_values)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"to_image expects [3, H, W] or [B, 3, H, W], got shape {x.shape}")
    mean, std = (np.asarray(v, dtype=x.dtype) for v in normalisation(model, processor))
    return np.clip(np.moveaxis(x, -3, -1) * std + mean, 0.0, 1.0)


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


def signed_overlay(ax, relevance, image, title: str | None = None, colorbar: bool = True,
                   cmap: str = SIGNED_CMAP, percentile: float = 99.0, limit: float | None = None):
    """Signed relevance laid over a grey copy of ``image``: each pixel gets the colour of
    :func:`signed_map` with an opacity that grows with ``|R|`` (transparent at 0, opaque from
    ``|R| = v``), so the image shows through wherever the relevance is small. Limits ``[-v, v]``
    as in :func:`signed_map`."""
    image = _as_image(image)
    rel = upsample(_numpy(relevance), image.shape[:2])
    v = limit if limit is not None else symmetric_limit(rel, percentile)
    ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1, interpolation="bilinear")
    handle = ax.imshow(rel, cmap=cmap, vmin=-v, vmax=v, alpha=np.clip(np.abs(rel) / v, 0.0, 1.0),
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
                 title: str | None = None, cell: float = 1.9, image_column: bool = True,
                 scale: str = "row"):
    """A grid: rows = samples (or layers), columns = the image then one map per method / layer / head.

    ``images``: ``[R, 3, H, W]`` (processor-normalised), ``[R, H, W, 3]`` or ``None`` (maps
    alone, without ``image_column``); ``maps``: ``[R, C, h, w]``
    (array, tensor or nested lists); ``col_titles``: C names; ``row_labels``: R strings written
    under each image (e.g. :func:`sample_label`), or left of the first map without the image column.
    Unsigned maps are overlaid (:func:`overlay`, normalised per map, one shared colour bar); signed
    maps use :func:`signed_map` with one limit per row (``scale="row"``: a colour bar per row, in
    relevance), or each map divided by its own :func:`symmetric_limit` (``scale="map"``: patterns
    compared across maps of very different magnitude; one colour bar from -1 to 1). Returns
    ``(fig, axes)``.
    """
    if scale not in ("row", "map"):
        raise ValueError(f"scale must be 'row' or 'map', got {scale!r}")
    maps = [[_numpy(m) for m in row] for row in maps]
    if signed and scale == "map":
        maps = [[m / symmetric_limit(m) for m in row] for row in maps]
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
        limit = (1.0 if scale == "map" else symmetric_limit(np.stack(maps[r]))) if signed else None
        for c in range(n_cols):
            ax = axes[r, c + first]
            col_title = col_titles[c] if r == 0 else None
            image = None if images is None else images[r]
            if signed:
                handle = signed_map(ax, maps[r][c], image=image, title=col_title, colorbar=False,
                                    limit=limit)
            else:
                handle = overlay(ax, image, maps[r][c], title=col_title)
        if signed and scale == "row":
            fig.colorbar(handle, ax=axes[r, first:], fraction=0.02, pad=0.01, label="relevance")
    if signed and scale == "map":
        fig.colorbar(handle, ax=axes[:, first:], fraction=0.02, pad=0.01,
                     label="relevance / the map's 99th percentile of |R|")
    if not signed:
        fig.colorbar(handle, ax=axes[:, first:], fraction=0.02, pad=0.01,
                     label="relative score per map (min-max)")
    if title:
        fig.suptitle(title)
    return fig, axes


def method_grid(images, maps: dict, row_labels, signed=(), per_row: int = 5, outlines=None,
                title: str | None = None, cell: float = 1.8):
    """Many methods on a few images, wrapped into rows of ``per_row`` panels: each image takes
    ``ceil((1 + methods) / per_row)`` rows, the image first (``row_labels`` under it), then one panel
    per method, titled with its name.

    ``images``: ``[R, 3, H, W]``; ``maps``: method name -> ``[R, h, w]``. Methods named in
    ``signed`` are drawn with :func:`signed_map`, each map divided by its own ``v`` (99th
    percentile of ``|R|``), so white is zero relevance; the others with :func:`overlay`, min-max
    per map. One colour bar for each kind. ``outlines``: ``[R, H, W]`` masks drawn as a cyan
    contour on every map. Returns ``(fig, axes)``, axes ``[R * rows per image, per_row]``.
    """
    names = list(maps)
    rows_each = -(-(len(names) + 1) // per_row)
    fig, axes = plt.subplots(rows_each * len(images), per_row, squeeze=False, layout="constrained",
                             figsize=(cell * per_row + 1.4, cell * rows_each * len(images) + 0.6))
    handles = {}
    for r, image in enumerate(images):
        block = axes[r * rows_each:(r + 1) * rows_each].ravel()
        show_image(block[0], image, title="image")
        block[0].set_xlabel(row_labels[r], fontsize=8)
        for ax, name in zip(block[1:], names):
            m = _numpy(maps[name][r])
            if name in signed:
                handles["signed"] = signed_map(ax, m / symmetric_limit(m), image=image, title=name,
                                               colorbar=False, limit=1.0)
            else:
                handles["unsigned"] = overlay(ax, image, m, title=name)
            if outlines is not None:
                ax.contour(_numpy(outlines[r]), levels=[0.5], colors="cyan", linewidths=0.8)
        for ax in block[1 + len(names):]:
            ax.axis("off")
    if "unsigned" in handles:
        fig.colorbar(handles["unsigned"], ax=axes, fraction=0.02, pad=0.01,
                     label="relative score per map (min-max)")
    if "signed" in handles:
        fig.colorbar(handles["signed"], ax=axes, fraction=0.02, pad=0.01,
                     label="signed relevance / its 99th percentile of |R| (white = 0)")
    if title:
        fig.suptitle(title)
    return fig, axes


def topk_bars(ax, probs, class_names, k: int = 5, true_label: int | None = None,
              title: str | None = None):
    """Horizontal bars of the ``min(k, classes)`` most probable classes (``probs`` over
    ``class_names``, one vector), each labelled with its probability: inside a long bar (white),
    right of a short one. The true class is green, a wrong top-1 red, the rest grey; if the true
    class is not among the bars its probability and rank are written under the axis."""
    p = _numpy(probs).ravel()
    order = np.argsort(-p, kind="stable")[:min(k, len(p))]
    colours = [CORRECT_COLOUR if i == true_label else NEUTRAL_COLOUR for i in order]
    if order[0] != true_label:
        colours[0] = WRONG_COLOUR
    y = np.arange(len(order))[::-1]
    ax.barh(y, p[order], color=colours)
    ax.set_yticks(y, [_short(class_names[i], 18) for i in order])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for yi, pi in zip(y, p[order]):
        inside = pi >= 0.5
        ax.text(pi - 0.02 if inside else pi + 0.02, yi, f"{100 * pi:.0f} %", va="center",
                ha="right" if inside else "left", fontsize=8, color="white" if inside else "black")
    if true_label is not None and true_label not in order:
        rank = int((p > p[true_label]).sum()) + 1
        ax.set_xlabel(f"probability\ntrue: {_short(class_names[true_label], 18)} "
                      f"(rank {rank}, {100 * p[true_label]:.1f} %)", color=CORRECT_COLOUR)
    if title:
        ax.set_title(title)


def confidence_histogram(ax, confidence, correct, bins: int = 20, title: str | None = None):
    """How many predictions fall in each bin of top-1 confidence, stacked: correct ones (green)
    below, incorrect ones (red) on top. Counts, not densities: two mistakes stay two predictions
    high, however many correct answers there are; where they are too few to see, their number is
    written above the bar. The legend gives each group's size and median."""
    confidence, correct = _numpy(confidence), np.asarray(correct, dtype=bool)
    groups = [(correct, CORRECT_COLOUR, "correct"), (~correct, WRONG_COLOUR, "incorrect")]
    labels = [f"{name} (n={int(mask.sum())}"
              + (f", median {np.median(confidence[mask]):.2f})" if mask.any() else ")")
              for mask, _, name in groups]
    edges = np.linspace(0, 1, bins + 1)
    (_, total), _, _ = ax.hist([confidence[mask] for mask, _, _ in groups], bins=edges, stacked=True,
                               color=[colour for _, colour, _ in groups], label=labels,
                               edgecolor="white", linewidth=0.5)
    wrong = np.histogram(confidence[~correct], bins=edges)[0]
    for left, n_wrong, height in zip(edges, wrong, total):
        if 0 < n_wrong < 0.03 * total.max():  # too few mistakes to see: count them above the bar
            ax.annotate(f"{n_wrong} \u2717", (left + 0.5 / bins, height), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8,
                        color=WRONG_COLOUR)
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence of the top-1 class (softmax)")
    ax.set_ylabel("number of predictions")
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)


def reliability_diagram(ax, bins, ece: float, title: str | None = None):
    """Accuracy against mean confidence per confidence bin (a :func:`helpers.predict.calibration_bins`
    table), bar width = bin, the diagonal = perfect calibration; each bin's number of predictions
    is written at the foot of its bar (horizontal, on a white box)."""
    filled = bins[bins["count"] > 0]
    width = float(bins["upper"].iloc[0] - bins["lower"].iloc[0])
    ax.bar(filled["lower"], filled["accuracy"], width=width, align="edge", color="#4393c3",
           edgecolor="white", label="accuracy in bin")
    gap_bottom = np.minimum(filled["accuracy"], filled["confidence"])
    ax.bar(filled["lower"], (filled["confidence"] - filled["accuracy"]).abs(), bottom=gap_bottom,
           width=width, align="edge", fill=False, hatch="///", edgecolor=WRONG_COLOUR, lw=0.8,
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="black", lw=1, label="perfect calibration")
    for lower, count in zip(filled["lower"], filled["count"]):
        ax.text(lower + width / 2, 0.015, f"{int(count)}", ha="center", va="bottom", fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                      "alpha": 0.85})
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (bin; numbers: predictions per bin)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ax.set_title(f"{title + ': ' if title else ''}ECE = {100 * ece:.1f} %")


def method_styles(labels) -> dict:
    """One look per method, the same in every figure: ``label -> {color, marker, linestyle}``.
    Colours from seaborn's colour-blind palette, then its dark palette (20 in all), markers from
    :data:`MARKERS`, solid lines (a figure may use dashed or dotted lines for a second reading)."""
    import seaborn as sns

    colours = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)
    return {label: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)],
                    "linestyle": "-"} for i, label in enumerate(labels)}


def duplicates(series: dict, atol: float = 5e-3) -> dict:
    """``label -> earlier label`` for every series (array of numbers) equal, within ``atol``, to
    one listed before it: the series a plot would draw on top of each other."""
    seen, same = {}, {}
    for label, values in series.items():
        values = np.asarray(_numpy(values), dtype=float)
        same.update({label: other for other, earlier in seen.items()
                     if label not in same and earlier.shape == values.shape
                     and np.allclose(earlier, values, atol=atol, rtol=0, equal_nan=True)})
        seen[label] = values
    return same


def plot_curves(ax, x, curves: dict, styles: dict, legend_labels: bool = True, same: dict | None = None,
                **overrides):
    """One line per ``label -> y values`` in ``curves``, styled by ``styles`` (see
    :func:`method_styles`; ``overrides`` apply to every line, e.g. ``linestyle="--"``). A curve equal
    to an earlier one (``same``, by default :func:`duplicates` of ``curves``; pass it to decide over
    several panels at once) gets larger hollow markers and the legend label
    ``"<label> (= <earlier>)"``, so that both stay visible."""
    same = duplicates(curves) if same is None else same
    for label, y in curves.items():
        style = {"markersize": 4, "lw": 1.4, **styles[label], **overrides}
        name = label
        if label in same:
            style.update(markersize=9, markerfacecolor="none", markeredgewidth=1.2)
            name = f"{label} (= {same[label]})"
        ax.plot(x, _numpy(y), label=name if legend_labels else None, **style)


_NAME = re.compile(r"^\d\d_[a-z0-9_]+(/[A-Za-z0-9._-]+)*$")


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


def png_bytes(fig, dpi: float = DPI) -> bytes:
    """``fig`` as a compact, reproducible PNG: rendered at ``dpi`` on white with a tight bounding
    box, reduced to a palette of :data:`PALETTE_COLOURS` colours (:func:`_palette_image`: about a
    third of the size), no metadata (no version, no date). The same figure always gives the same
    bytes. The result is kept on the figure, so showing it right after saving costs nothing."""
    kept = getattr(fig, "_course_png", None)
    if kept is not None and kept[0] == dpi and not fig.stale:
        return kept[1]
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=dpi, bbox_inches="tight", facecolor="white",
                metadata={"Software": None})
    fig.stale = False  # drawn as it is now; any later change to an artist marks it stale again
    out = io.BytesIO()
    rgb = np.asarray(Image.open(rendered).convert("RGB"))
    _palette_image(rgb, keep=_drawing_colours(fig)).save(out, format="png")
    fig._course_png = (dpi, out.getvalue())
    return out.getvalue()


def _drawing_colours(fig, limit: int = 64) -> np.ndarray:
    """The opaque colours the figure's artists draw with (lines, markers, bars, legend patches), as
    ``[N, 3]`` uint8, at most ``limit`` (a colour-mapped scatter with more is left out: its colours
    are a gradient the palette approximates well anyway)."""
    from matplotlib.colors import to_rgba_array

    found = []
    for artist in fig.findobj():
        for getter in ("get_facecolor", "get_edgecolor", "get_color", "get_markerfacecolor"):
            try:
                colours = to_rgba_array(getattr(artist, getter)())
            except (AttributeError, TypeError, ValueError):
                continue
            if len(colours) <= limit:
                found.append(colours[colours[:, 3] == 1, :3])
    if not found:
        return np.zeros((0, 3), np.uint8)
    colours = np.unique(np.rint(np.concatenate(found) * 255).astype(np.uint8), axis=0)
    return colours if len(colours) <= limit else np.zeros((0, 3), np.uint8)


def _palette_image(rgb: np.ndarray, colours: int = PALETTE_COLOURS, refinements: int = 2,
                   keep: np.ndarray | None = None) -> Image.Image:
    """``[H, W, 3]`` uint8 -> a palette image. Kept exactly, each in a palette entry of its own:
    colours that cover at least 1 % of the image (the white background) and the colours of ``keep``
    that the image shows (:func:`_drawing_colours`: the hues that tell one head or one method from
    another must not merge, however few pixels their markers cover). The other entries: median
    cut over the image's distinct colours, each weighted by ``sqrt(pixels)`` (so a colour bar or a
    thin line keeps its hues beside large areas of one colour), then ``refinements`` weighted
    k-means (Lloyd) steps; every pixel takes its nearest palette colour (exact for images with at
    most ``colours`` colours). Deterministic; no dithering."""
    from scipy.spatial import cKDTree

    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    distinct, inverse, counts = np.unique(codes.ravel(), return_inverse=True, return_counts=True)
    distinct_rgb = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], -1).astype(np.uint8)
    exact = counts >= 0.01 * counts.sum()
    if keep is not None and len(keep):
        keep_codes = (keep[:, 0].astype(np.int32) << 16) | (keep[:, 1].astype(np.int32) << 8) | keep[:, 2]
        exact |= np.isin(distinct, keep_codes)
    exact_rgb = distinct_rgb[exact][:colours // 2]
    free = colours - len(exact_rgb)
    if len(distinct) <= colours:
        palette = distinct_rgb.astype(float)
    else:
        weights = np.sqrt(counts)
        weighted = np.repeat(distinct_rgb, np.ceil(weights).astype(int), axis=0)
        palette = Image.fromarray(weighted[None]).quantize(free, method=Image.Quantize.MEDIANCUT)
        palette = np.asarray(palette.getpalette()[:3 * free], dtype=float).reshape(-1, 3)
        for _ in range(refinements):
            _, nearest = cKDTree(palette).query(distinct_rgb.astype(float))
            mass = np.bincount(nearest, weights, minlength=len(palette))
            sums = np.stack([np.bincount(nearest, weights * distinct_rgb[:, c], minlength=len(palette))
                             for c in range(3)], -1)
            palette[mass > 0] = sums[mass > 0] / mass[mass > 0, None]
        palette = np.concatenate([exact_rgb.astype(float), palette])
    palette = np.rint(palette).astype(np.uint8)
    _, nearest = cKDTree(palette.astype(float)).query(distinct_rgb.astype(float))
    image = Image.fromarray(nearest[inverse].reshape(rgb.shape[:2]).astype(np.uint8), mode="P")
    image.putpalette(palette.ravel().tolist())
    return image


def write_png(fig, path) -> Path:
    """Write ``fig`` to ``path`` as :func:`png_bytes` (``DPI``), creating its folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


def save(fig, name: str) -> Path:
    """Write ``fig`` to ``figures/<name>.png`` (:func:`write_png`) and return the path.

    ``name`` is ``NN_what_it_shows``: the notebook's number first, lower case, no extension; or a
    file in a folder of such a name, ``NN_what/<sub folders>/<file>`` (e.g. one folder a sample).
    """
    if not _NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"figure name {name!r} must look like '01_what_it_shows' (the notebook's "
                         "two-digit number, then lower-case words joined by '_', no extension), "
                         "optionally followed by '/<folder>/<file>'")
    return write_png(fig, figure_dir() / f"{name}.png")


def _inline_png(fig) -> str | None:
    """IPython's ``image/png`` formatter for figures: :func:`png_bytes` at ``INLINE_DPI``, base64."""
    if not fig.axes:
        return None
    return base64.b64encode(png_bytes(fig, INLINE_DPI)).decode("ascii")


def _show_compact_figures() -> None:
    """In a Jupyter kernel, make inline figures the same compact PNGs as the saved ones.

    The inline backend registers its own formatter when pyplot first loads it, so load it now (the
    backend already chosen: nothing else changes), then replace the formatter for ``Figure``.
    Does nothing outside IPython.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    plt.switch_backend(mpl.get_backend())
    shell.display_formatter.formatters["image/png"].for_type(Figure, _inline_png)


_show_compact_figures()


def batch_run() -> bool:
    """True when no person is at the keyboard: ``make run`` and ``make test`` set ``COURSE_BATCH=1``."""
    return os.environ.get("COURSE_BATCH") == "1"


def progress_enabled() -> bool:
    """Whether to show progress bars: not in batch runs, where a bar would be saved in the
    notebook's outputs, frozen at 0 %, as a widget."""
    return not batch_run()


def progress_bar(iterable=None, show: bool | None = None, **options):
    """``tqdm.auto``'s progress bar over ``iterable`` (``options``: desc, total, unit ...), hidden
    when ``show`` is False, or when ``show`` is None and this is a batch run (:func:`progress_enabled`)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not (progress_enabled() if show is None else show), **options)


def live_widgets():
    """The ``ipywidgets`` module when a person can use the controls, else None (and says why).

    Batch runs (:func:`batch_run`) get None: nbconvert can deadlock on ``ipywidgets.interact``
    (jupyter/nbconvert#1921, #2029), and every explorer draws its default view statically first,
    so nothing is lost.
    """
    if batch_run():
        print("Batch run: the live controls are skipped; the static view above is their default.")
        return None
    try:
        import ipywidgets
    except ImportError:
        print("ipywidgets is not installed: the static view above is the explorer's default.")
        return None
    return ipywidgets
