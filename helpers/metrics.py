"""Which explanation can we trust? Localisation, faithfulness, sanity checks and cost.

Every metric works on plain tensors and a callable model, batched, on the model's device, and
leaves the model as it found it (no hooks, no mode change, no global random state consumed).

Maps are ``[B, h, w]``: the patch grid of ``helpers.explain`` (``h = H / patch``) or pixels
(``h = H``). Masks are pixel masks ``[B, H, W]`` (``True`` = the object). A map cell covers an
``H/h x W/w`` block of pixels; the helpers below state how cells and pixels are compared.

- Localisation against a ground-truth mask: :func:`pointing_game` (Zhang et al. 2018) and its
  random-map rate :func:`pointing_chance`, :func:`relevance_mass` (Arras et al. 2022), via
  :func:`mask_fraction_per_cell`.
- Faithfulness: :func:`deletion_insertion` (Petsiuk et al. 2018), built from
  :func:`perturbation_curve` and :func:`area_under_curve`, with :func:`random_order_maps` as the
  baseline every method must beat.
- Sanity: :func:`cascading_randomization` (Adebayo et al. 2018) over
  :func:`randomization_stages`, scored by :func:`spearman_per_image`.
- Uncertainty: :func:`bootstrap_ci`, :func:`wilson_interval`.
"""
from __future__ import annotations

import copy
import math
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .methods._base import as_targets

# ----------------------------------------------------------------------------- shapes and devices


def _cell_size(maps: torch.Tensor, pixel_shape: Sequence[int]) -> tuple[int, int]:
    """Pixels per map cell ``(H/h, W/w)``; raises if the map grid does not tile the image."""
    (h, w), (H, W) = maps.shape[-2:], pixel_shape[-2:]
    if H % h or W % w:
        raise ValueError(
            f"map grid {h}x{w} does not tile images of {H}x{W} pixels; pass maps on the patch "
            "grid (e.g. 14x14 for 224 px, patch 16) or at pixel resolution"
        )
    return H // h, W // w


def _check_batch(maps: torch.Tensor, other: torch.Tensor, name: str) -> None:
    """Raise unless ``maps`` is ``[B, h, w]`` with the same ``B`` as ``other``."""
    if maps.dim() != 3 or maps.shape[0] != other.shape[0]:
        raise ValueError(
            f"expected maps [B, h, w] and {name} with the same B, got {tuple(maps.shape)} and "
            f"{tuple(other.shape)}"
        )


def mask_fraction_per_cell(masks: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Fraction of each map cell's pixels that lie inside the mask: ``[B, H, W] -> [B, h, w]``.

    ``f_c = |pixels(c) ∩ mask| / |pixels(c)|`` (average pooling over non-overlapping blocks).
    At pixel resolution this is the mask itself, as floats.
    """
    cell = _cell_size(torch.empty(tuple(grid)), masks.shape)
    return F.avg_pool2d(masks[:, None].float(), kernel_size=cell, stride=cell)[:, 0]


def _model_device(model) -> torch.device | None:
    """The device of a module's parameters, or None for a parameter-free callable."""
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return None if parameter is None else parameter.device


def _logits(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits of a HF classifier (``.logits``) or of any callable returning a tensor."""
    output = model(pixel_values)
    return output.logits if hasattr(output, "logits") else output


def _as_targets(model, pixel_values: torch.Tensor, targets) -> torch.Tensor:
    """Targets as LongTensor [B] on the images' device: ``None`` = the model's prediction, an int
    (every image), or one class per image (a sequence or a tensor)."""
    if targets is None:
        with torch.no_grad():
            return _logits(model, pixel_values).argmax(-1)
    return as_targets(targets, pixel_values.shape[0]).to(pixel_values.device)


# ----------------------------------------------------------------------------- localisation


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: float = 15.0) -> torch.Tensor:
    """Pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop", IJCV):
    is the map's maximum on the object? -> BoolTensor [B].

    A hit if the point of maximal relevance lies within ``tolerance`` pixels (Euclidean) of a mask
    pixel; the paper uses 15 px at 224 px. A pixel map points with its maximal pixel. A patch-grid
    map points with its maximal cell, i.e. with the block of pixels it covers, and is a hit if the
    nearest of those pixels is within ``tolerance`` of the mask: the cell, grown by the tolerance,
    overlaps the object (``tolerance=0``: the patch overlaps the object). This is the pixel rule
    applied to the map upsampled to pixels, crediting any pixel of the maximal patch, since a
    patch map cannot say where inside the patch it points. Ties: if several cells share the
    maximum, the image is a hit only if *every* tied cell is a hit, so a flat map earns nothing
    (Quantus 0.6 counts a hit if *any* tied maximum is in the mask, and has no tolerance).
    An empty mask raises.
    """
    _check_batch(maps, masks, "masks")
    if not masks.flatten(1).any(1).all():
        raise ValueError("every mask needs at least one object pixel; drop images without object")
    cell_distance = _cell_distance_to_mask(masks.to(maps.device), maps.shape[-2:])
    is_max = maps == maps.flatten(1).amax(1)[:, None, None]
    return ((cell_distance <= tolerance) | ~is_max).flatten(1).all(1)


def pointing_chance(masks: torch.Tensor, grid: Sequence[int], tolerance: float = 15.0) -> torch.Tensor:
    """Hit rate of a random map in the :func:`pointing_game`, per image -> FloatTensor [B].

    A map whose maximum falls on a uniformly random cell of the ``h x w`` ``grid`` hits with
    probability ``|{c : d(c, mask) <= tolerance}| / (h w)``: the share of cells that lie within
    ``tolerance`` px of the object, by the same cell-to-mask distance as the pointing game
    (pass ``grid = masks.shape[-2:]`` for pixel maps). The floor a localising map must beat.
    """
    if not masks.flatten(1).any(1).all():
        raise ValueError("every mask needs at least one object pixel; drop images without object")
    return (_cell_distance_to_mask(masks, tuple(grid)) <= tolerance).float().flatten(1).mean(1)


def _cell_distance_to_mask(masks: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """Distance (px) between each map cell's pixels and the nearest mask pixel: [B, h, w].

    Exact and separable: ``d^2 = min_x' [dx(c, x')^2 + min_y' {dy(c, y')^2 : mask(y', x')}]``, with
    ``dy(c, y')`` the gap between row ``y'`` and the cell's rows (0 inside), cf. Felzenszwalb &
    Huttenlocher 2012; one image at a time to bound memory at pixel resolution.
    """
    (h, w), (H, W) = grid, masks.shape[-2:]
    cell_h, cell_w = _cell_size(torch.empty(h, w), masks.shape)

    def squared_gaps(n_cells: int, cell: int, n_pixels: int) -> torch.Tensor:
        first = torch.arange(n_cells, device=masks.device)[:, None] * cell  # [cells, 1]
        pixel = torch.arange(n_pixels, device=masks.device)[None, :]  # [1, pixels]
        gap = torch.maximum(first - pixel, pixel - (first + cell - 1)).clamp(min=0)
        return gap.float() ** 2

    dy2, dx2 = squared_gaps(h, cell_h, H), squared_gaps(w, cell_w, W)  # [h, H], [w, W]

    def one_image(mask: torch.Tensor) -> torch.Tensor:
        source = torch.where(mask, 0.0, math.inf)  # [H, W]
        column = (dy2[:, :, None] + source[None]).amin(1)  # [h, W]: min over object rows y'
        return (dx2[None] + column[:, None, :]).amin(2).sqrt()  # [h, w]

    return torch.stack([one_image(mask) for mask in masks])


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI", Information Fusion 81): the share
    of positive relevance that falls on the object -> FloatTensor [B] in [0, 1].

    ``RMA = sum_c f_c R_c^+ / sum_c R_c^+`` with ``R^+ = max(R, 0)`` and ``f_c`` the fraction of
    cell ``c``'s pixels inside the mask (:func:`mask_fraction_per_cell`). At patch level this equals
    the pixel-level score of the map spread evenly (nearest-neighbour) over its patch's pixels, so
    patch maps and pixel maps are scored the same way. Negative relevance is ignored, as in the
    paper (Quantus 0.6 sums signed relevance instead). A map without positive relevance scores 0.
    """
    _check_batch(maps, masks, "masks")
    fraction = mask_fraction_per_cell(masks.to(maps.device), maps.shape[-2:])
    positive = maps.clamp(min=0).flatten(1)
    inside = (positive * fraction.flatten(1)).sum(1)
    total = positive.sum(1)
    return torch.where(total > 0, inside / total.clamp(min=torch.finfo(maps.dtype).tiny), 0.0)


# ----------------------------------------------------------------------------- uncertainty


def wilson_interval(successes: int, trials: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Wilson score interval for a proportion (Wilson 1927, JASA 22): ``(p, lo, hi)``.

    ``centre = (p + z^2/2n) / (1 + z^2/n)``, ``half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)``,
    ``z`` the ``1 - alpha/2`` normal quantile. Unlike the normal approximation it stays inside
    [0, 1] and is not degenerate at p = 0 or 1.
    """
    if trials <= 0:
        raise ValueError("wilson_interval needs at least one trial")
    z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return p, max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(
    values, n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and ``1 - alpha`` confidence interval: ``(mean, lo, hi)``.

    Booleans (e.g. pointing-game hits) get the :func:`wilson_interval`. Other values get the
    percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the values with replacement
    ``n_resamples`` times, take the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled
    means. NaNs are dropped.
    """
    values = torch.as_tensor(values).flatten().cpu()
    if values.dtype == torch.bool:
        return wilson_interval(int(values.sum()), values.numel(), alpha)
    values = values.double()
    values = values[~values.isnan()]
    if values.numel() == 0:
        raise ValueError("bootstrap_ci needs at least one value that is not NaN")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(values.numel(), (n_resamples, values.numel()), generator=generator)
    means = values[picks].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=means.dtype))
    return values.mean().item(), lo.item(), hi.item()


# ----------------------------------------------------------------------------- faithfulness


def random_order_maps(shape: Sequence[int], seed: int = 0, device=None) -> torch.Tensor:
    """Maps of i.i.d. uniform noise, shape ``[B, h, w]``: a uniformly random patch order.

    The reference for :func:`deletion_insertion`: a method whose areas are no better than these
    carries no information about what the model uses (Petsiuk et al. 2018 compare to random too).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(shape), generator=generator).to(device)


def baseline_image(pixel_values: torch.Tensor, baseline="zero") -> torch.Tensor:
    """The image that replaces removed patches, same shape as ``pixel_values``.

    ``"zero"``: 0 in the processor's normalised space (mid-grey for mean = std = 0.5);
    ``"blur"``: Gaussian blur, kernel 11, sigma 5 (the insertion substrate of Petsiuk et al. 2018);
    ``"mean"``: each image's per-channel mean; a number or a tensor broadcastable to the images.
    """
    if isinstance(baseline, str):
        if baseline == "zero":
            return torch.zeros_like(pixel_values)
        if baseline == "blur":
            from torchvision.transforms.functional import gaussian_blur

            return gaussian_blur(pixel_values, kernel_size=11, sigma=5.0)
        if baseline == "mean":
            return pixel_values.mean((-2, -1), keepdim=True).expand_as(pixel_values)
        raise ValueError(f"unknown baseline {baseline!r}: use 'zero', 'blur', 'mean' or a tensor")
    baseline = torch.as_tensor(baseline, dtype=pixel_values.dtype, device=pixel_values.device)
    return baseline.expand_as(pixel_values).clone()


def relevance_rank(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rank of every cell, 0 = most relevant: ``[B, h, w] -> LongTensor [B, h*w]`` (row-major).

    Ties are broken at random (seeded), so a flat map perturbs in a random order, not row-major.
    """
    flat = maps.flatten(1)
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(flat.shape[1], generator=generator).to(flat.device)
    order = shuffle[flat[:, shuffle].argsort(dim=1, descending=True, stable=True)]
    return order.argsort(1)


def perturbation_curve(
    model,
    pixel_values: torch.Tensor,
    maps: torch.Tensor,
    targets=None,
    mode: str = "deletion",
    steps: int = 49,
    baseline="zero",
    batch_size: int = 64,
    seed: int = 0,
    ends: torch.Tensor | None = None,
    patch_embedding: torch.nn.Conv2d | None = None,
) -> torch.Tensor:
    """Target-class probability while cells are deleted or inserted by relevance -> [B, steps+1].

    Petsiuk et al. 2018, "RISE" (BMVC), causal metrics. Cells are ordered by relevance, most
    relevant first (:func:`relevance_rank`). At step ``k = 0..steps`` the first
    ``n_k = round(k N / steps)`` of the ``N`` cells are

    - ``deletion``: replaced by the baseline image (curve starts at the clean image);
    - ``insertion``: the only ones taken from the image, the rest from the baseline.

    Each point is ``softmax(model(x_k))[target]`` (``targets=None``: the predicted class). The
    perturbed images are built chunk by chunk (``batch_size`` images per forward pass, under
    ``torch.no_grad``) on the model's device. The first and last points do not depend on the map
    (the clean image and the baseline image): ``ends`` ``[B, 2]``, their probabilities from
    :func:`end_probabilities`, saves scoring them again for every map of the same images.

    ``maps`` ``[V, B, h, w]``: several maps of each image (e.g. one per method) -> curves
    ``[V, B, steps+1]``, each the curve its map gives alone (ranks tie-broken per map, as in
    separate calls). Where two maps change the same cells of an image at some step, the perturbed
    image is the same: it is scored once (about one in nine of 14 methods' images on 64 scenes).

    ``patch_embedding``: the model's patch-embedding convolution, when each map cell is one of its
    patches (stride = kernel size = cell size). It sees every patch alone, so the embedding of a
    perturbed image is, patch by patch, that of the clean image or of the baseline image: both are
    embedded once, and each perturbed image is assembled from them at the embedding instead of
    being built in pixels and embedded again (the same numbers, about 15 % less work).
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    several = maps.dim() == 4
    stacked = maps if several else maps[None]
    _check_batch(stacked[0], pixel_values, "pixel_values")
    device = _model_device(model) or pixel_values.device
    x = pixel_values.to(device)
    substrate = baseline_image(x, baseline)
    V, B, n_cells = stacked.shape[0], stacked.shape[1], stacked[0, 0].numel()
    if not 1 <= steps <= n_cells:
        raise ValueError(f"steps must be between 1 and the number of cells, {n_cells}; got {steps}")
    (h, w), cell = stacked.shape[-2:], _cell_size(stacked, x.shape)
    by_cell = (B, x.shape[1], h, cell[0], w, cell[1])  # each map cell's pixels on axes 3 and 5
    x_cells, substrate_cells = x.reshape(by_cell), substrate.expand_as(x).reshape(by_cell)
    rank = torch.stack([relevance_rank(m, seed) for m in stacked]).to(device)  # [V, B, N]
    n_changed = (torch.arange(steps + 1, device=device) * n_cells / steps).round()  # [K]
    targets = _as_targets(model, x, targets)
    curves = torch.empty(V, B, steps + 1, device=device)
    scored_steps = torch.arange(steps + 1, device=device)
    if ends is not None:
        if ends.shape != (B, 2):
            raise ValueError(f"ends must have shape [{B}, 2] (clean, baseline), got {tuple(ends.shape)}")
        clean, empty = ends.to(device).float().unbind(1)
        curves[:, :, 0], curves[:, :, -1] = (clean, empty) if mode == "deletion" else (empty, clean)
        scored_steps = scored_steps[1:-1]

    # Every (map, step) of an image asks for a set of changed cells; equal sets are one image.
    changed_sets, image_of_set, set_of_point = [], [], []
    for b in range(B):
        wanted = rank[:, b, None, :] < n_changed[scored_steps][None, :, None]  # [V, K, N]
        distinct, inverse = torch.unique(wanted.flatten(0, 1).to(torch.uint8), dim=0, return_inverse=True)
        set_of_point.append(inverse.view(V, -1) + len(image_of_set))  # [V, K]: rows of changed_sets
        changed_sets.append(distinct.bool())
        image_of_set += [b] * len(distinct)
    changed_sets, image_of_set = torch.cat(changed_sets), torch.tensor(image_of_set, device=device)
    probabilities = torch.empty(len(changed_sets), device=device)
    with torch.no_grad():
        embedded = None if patch_embedding is None else _embedded_once(patch_embedding, x, substrate, (h, w))
        for chunk in torch.split(torch.arange(len(changed_sets), device=device), batch_size):
            b, changed = image_of_set[chunk], changed_sets[chunk]  # [n], [n, N]: the cells taken so far
            keep_image = ~changed if mode == "deletion" else changed
            if embedded is None:
                perturbed = torch.where(keep_image.view(-1, 1, h, 1, w, 1), x_cells[b], substrate_cells[b])
                p = _logits(model, perturbed.view(-1, *x.shape[1:]))
            else:
                mixed = torch.where(keep_image.view(-1, 1, h, w), embedded[0][b], embedded[1][b])
                with _returning(patch_embedding, mixed):  # the images' pixels are not read
                    p = _logits(model, x[:1].expand(len(b), *x.shape[1:]))
            probabilities[chunk] = p.float().softmax(-1).gather(1, targets[b][:, None])[:, 0]
    curves[:, :, scored_steps] = probabilities[torch.stack(set_of_point, 1)]  # [V, B, K]
    return curves if several else curves[0]


def patchifies(conv, image_shape, grid) -> bool:
    """Whether ``conv`` embeds each cell of ``grid`` (rows, columns) of an image of ``image_shape``
    alone: a convolution with stride = kernel size, no padding, whose patches are those cells."""
    return (isinstance(conv, torch.nn.Conv2d) and tuple(conv.stride) == tuple(conv.kernel_size)
            and tuple(conv.padding) == (0, 0) and tuple(conv.dilation) == (1, 1) and conv.groups == 1
            and (image_shape[-2] // conv.kernel_size[0], image_shape[-1] // conv.kernel_size[1]) == tuple(grid)
            and image_shape[-2] % conv.kernel_size[0] == 0 and image_shape[-1] % conv.kernel_size[1] == 0)


def _embedded_once(patch_embedding, x, substrate, grid):
    """The patch embeddings ``[B, C, h, w]`` of the clean and of the baseline images."""
    conv = patch_embedding
    if not patchifies(conv, x.shape, grid):
        raise ValueError(f"patch_embedding must be a convolution with stride = kernel size whose patches are "
                         f"the map's {grid[0]}x{grid[1]} cells, got {conv}")
    return conv(x), conv(substrate.expand_as(x))


@contextmanager
def _returning(module, output):
    """``module`` returns ``output`` whatever its input, until the block ends."""
    saved = module.__dict__.get("forward")
    module.forward = lambda *args, **kwargs: output
    try:
        yield
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


def end_probabilities(model, pixel_values: torch.Tensor, targets=None, baseline="zero",
                      batch_size: int = 64) -> torch.Tensor:
    """``[B, 2]``: the target-class probability of each clean image and of its baseline image, the
    two points every deletion and insertion curve of these images shares (:func:`perturbation_curve`,
    ``ends``)."""
    device = _model_device(model) or pixel_values.device
    x = pixel_values.to(device)
    targets = _as_targets(model, x, targets)
    both = torch.cat([x, baseline_image(x, baseline)])
    with torch.no_grad():
        p = torch.cat([_logits(model, chunk).float().softmax(-1) for chunk in torch.split(both, batch_size)])
    return p.gather(1, targets.repeat(2)[:, None])[:, 0].view(2, -1).t()


def area_under_curve(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoid area of curves ``[B, K]`` sampled evenly over the fraction [0, 1] -> [B]."""
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[-1] - 1), dim=-1)


@dataclass(frozen=True)
class DeletionInsertion:
    """Curves ``[B, steps+1]`` over the ``fractions`` ``[steps+1]`` of cells changed; areas [B]
    (``[V, B, steps+1]`` and ``[V, B]`` for maps ``[V, B, h, w]``).

    Deletion: lower area = the map found what the model needs. Insertion: higher is better.
    """

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_area: torch.Tensor
    insertion_area: torch.Tensor


def deletion_insertion(
    model,
    pixel_values: torch.Tensor,
    maps: torch.Tensor,
    targets=None,
    steps: int = 49,
    baseline="zero",
    batch_size: int = 64,
    seed: int = 0,
    ends: torch.Tensor | None = None,
    patch_embedding: torch.nn.Conv2d | None = None,
) -> DeletionInsertion:
    """Deletion and insertion curves and areas (Petsiuk et al. 2018, "RISE", BMVC).

    Both with :func:`perturbation_curve` and the same baseline, so every method is measured by the
    same protocol; area = trapezoid over the fraction of cells in [0, 1] (:func:`area_under_curve`).
    The defaults perturb 4 of 196 patches per step (49 steps). Petsiuk et al. delete to black and
    insert into a blurred copy; here one ``baseline`` serves both (pass ``"blur"`` to follow them
    for insertion, or call :func:`perturbation_curve` twice). ``ends``: as in
    :func:`perturbation_curve` (computed here once for both curves when not given), and so are
    ``patch_embedding`` and maps ``[V, B, h, w]`` (several maps of each image, scored together).
    """
    if ends is None:
        pixel_values = pixel_values.to(_model_device(model) or pixel_values.device)
        targets = _as_targets(model, pixel_values, targets)
        ends = end_probabilities(model, pixel_values, targets, baseline, batch_size)
    options = dict(steps=steps, baseline=baseline, batch_size=batch_size, seed=seed, ends=ends,
                   patch_embedding=patch_embedding)
    deletion = perturbation_curve(model, pixel_values, maps, targets, "deletion", **options)
    insertion = perturbation_curve(model, pixel_values, maps, targets, "insertion", **options)
    return DeletionInsertion(
        fractions=torch.linspace(0, 1, steps + 1),
        deletion=deletion,
        insertion=insertion,
        deletion_area=area_under_curve(deletion),
        insertion_area=area_under_curve(insertion),
    )


# ----------------------------------------------------------------------------- sanity checks


def randomization_stages(model) -> list[tuple[str, list[str]]]:
    """Cascading stages of ``model``, top first: ``[(name, [modules])]``, from its backbone adapter.

    ``head`` (classifier(s) and final LayerNorm), then ``layer L`` ... ``layer 1`` (numbered from
    1, as everywhere in the course), then ``embeddings`` (patch projection, prefix tokens such as
    CLS, position embeddings).
    """
    from .backbones import adapter_for

    return adapter_for(model).randomization_stages()


def _reinitialise(module: torch.nn.Module) -> None:
    """Re-draw every parameter of ``module`` and its children from its initial distribution.

    Modules with ``reset_parameters`` (Linear, Conv2d, LayerNorm) use PyTorch's default
    initialisation; bare parameters (CLS token, position embeddings) get N(0, 0.02^2), the
    ViT initialiser (Dosovitskiy et al. 2021, ``initializer_range``).
    """
    for child in module.modules():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            for parameter in child.parameters(recurse=False):
                torch.nn.init.normal_(parameter, std=0.02)


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image of two map batches ``[B, ...]`` -> [B].

    Pearson correlation of the ranks (ties get their average rank, Spearman 1904); NaN when a map
    is constant (its ranks have no spread).
    """
    ranks = [_average_ranks(m.flatten(1).double()) for m in (a, b)]
    ra, rb = (r - r.mean(1, keepdim=True) for r in ranks)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0..N-1 along dim 1; tied values share the mean of their ranks."""
    sorted_values, order = values.sort(1)
    starts_group = torch.ones_like(sorted_values, dtype=torch.bool)
    starts_group[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = starts_group.cumsum(1) - 1  # tie-group id of each sorted position
    positions = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
    positions = positions.expand_as(values).contiguous()
    rank_sum = torch.zeros_like(values).scatter_add_(1, group, positions)
    group_size = torch.zeros_like(values).scatter_add_(1, group, torch.ones_like(values))
    sorted_ranks = (rank_sum / group_size.clamp(min=1)).gather(1, group)
    return torch.empty_like(values).scatter_(1, order, sorted_ranks)


def cascading_randomization(
    model,
    explain_fn: Callable,
    pixel_values: torch.Tensor,
    targets=None,
    stages: list[tuple[str, list[str]]] | None = None,
    absolute: bool = False,
    seed: int = 0,
) -> list[tuple[str, torch.Tensor]]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency
    maps", NeurIPS): ``[(stage name, Spearman correlation [B]), ...]``, top stage first.

    On a deep copy of ``model`` (the original is never touched), the stages are re-initialised one
    after another from the top (``head``, then ``layer L`` ... ``layer 1``, ``embeddings``; see
    :func:`randomization_stages`), each on top of the previous ones. After every stage the
    images are explained again, ``explain_fn(model_copy, pixel_values, targets) -> [B, h, w]``,
    always for the same ``targets`` (``None``: the original model's prediction), and compared with
    the original map by Spearman's rank correlation ``rho = corr(rank(m_0), rank(m_k))``
    (:func:`spearman_per_image`; ``absolute=True`` ranks ``|m|``, the paper reports both).
    A map that stays at rho ~ 1 while the model it explains is destroyed does not explain the
    model. Re-initialisation draws from a private, seeded random state (``seed``).
    """
    stages = randomization_stages(model) if stages is None else stages
    device = _model_device(model) or pixel_values.device
    pixel_values = pixel_values.to(device)
    targets = _as_targets(model, pixel_values, targets)
    randomised = copy.deepcopy(model)

    def explain() -> torch.Tensor:
        maps = explain_fn(randomised, pixel_values, targets).detach()
        return maps.abs() if absolute else maps

    original = explain()
    correlations = []
    cuda = [device.index or 0] if device.type == "cuda" else []
    for number, (name, module_names) in enumerate(stages):
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.manual_seed(seed + number)
            for module_name in module_names:
                _reinitialise(randomised.get_submodule(module_name))
        correlations.append((name, spearman_per_image(original, explain()).float().cpu()))
    return correlations
