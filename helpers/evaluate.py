"""Every explanation method measured side by side, by one protocol: the machinery of notebook 05.

A *variant* is a method with its options, e.g. ``"cp-lrp (balanced)": ("attnlrp", {"preset":
"balanced", "variant": "cp"})`` (:func:`method_variants`). The functions below run each variant over a set of images
and return tidy DataFrames (one row per variant and image, or per variant, stage and image), built
on :mod:`helpers.metrics`; the notebook only aggregates and plots them.

- :func:`explain_variants`     maps of every variant, batched, plus the two reference maps
  (:data:`RANDOM`: i.i.d. noise, a random patch order; :data:`UNIFORM`: a constant map);
- :func:`localisation_scores`  pointing game (Zhang et al. 2018) and relevance mass (Arras et al.
  2022) per image;
- :func:`faithfulness_scores`  deletion / insertion areas per image and the mean curves (Petsiuk
  et al. 2018), optionally with the softmax restricted to the dataset's classes (ImageNet-A);
- :func:`sanity_scores`        cascading randomisation (Adebayo et al. 2018), Spearman rho per stage;
- :func:`bench_costs`          time per image in forward passes, from ``make bench``'s table;
- :func:`results_table`        one row per variant: means with 95 % confidence intervals.
"""
from __future__ import annotations

import copy
from functools import partial

import pandas as pd
import torch

from . import metrics
from .methods import explain
from .methods._base import patch_grid
from .methods.attnlrp import PRESETS
from .predict import masked_logits

RANDOM = "random map"
UNIFORM = "uniform map"
GAMMA_PRESETS = tuple(PRESETS)


def method_variants(presets=GAMMA_PRESETS, rollout_max_discard: float | None = 0.9,
                    full_attnlrp_presets=("balanced",)) -> dict:
    """``{label: (method, options)}`` for every method of the course, in teaching order.

    Rollout with mean fusion (Abnar & Zuidema 2020), plus max fusion discarding the lowest
    ``rollout_max_discard`` of the entries (vit-explain's variant; ``None`` leaves it out); GMAR with
    both norms; LRP with CP-LRP in the attention (lxt's ViT path, labelled ``cp-lrp``) with each
    Gamma preset in ``presets``, and full AttnLRP (``attnlrp``) with each of
    ``full_attnlrp_presets``.
    """
    variants = {"attention": ("attention", {}),
                "rollout (mean)": ("rollout", {"head_fusion": "mean"})}
    if rollout_max_discard is not None:
        variants[f"rollout (max, discard {rollout_max_discard:g})"] = (
            "rollout", {"head_fusion": "max", "discard_ratio": rollout_max_discard})
    variants |= {"chefer": ("chefer", {}),
                 "gmar (l1)": ("gmar", {"norm": "l1"}),
                 "gmar (l2)": ("gmar", {"norm": "l2"}),
                 "legrad": ("legrad", {})}
    variants |= {f"cp-lrp ({preset})": ("attnlrp", {"preset": preset, "variant": "cp"})
                 for preset in presets}
    variants |= {f"attnlrp ({preset})": ("attnlrp", {"preset": preset, "variant": "attnlrp"})
                 for preset in full_attnlrp_presets}
    return variants


def explain_variants(model, pixel_values: torch.Tensor, targets, variants: dict,
                     batch_size: int = 16, references: bool = True, seed: int = 0,
                     progress: bool | None = None, ids=None, cache=None) -> dict:
    """``{label: maps [N, h, w]}`` (CPU) of every variant on the patch grid, explaining ``targets``
    (model-head indices, one per image), ``batch_size`` images at a time, every variant of a batch
    in one call of :func:`helpers.methods.explain_many` (attention, rollout, Chefer and GMAR share
    one forward and one backward pass).

    ``references=True`` adds :data:`RANDOM` (:func:`helpers.metrics.random_order_maps`, seeded)
    and :data:`UNIFORM` (all ones: every patch equally relevant). ``progress``: a bar over the
    batches (None: unless a batch run, :func:`helpers.viz.progress_bar`). With ``ids`` (one per
    image) and ``cache`` (a folder, e.g. :func:`helpers.predict.cache_dir`), maps another call
    (or notebook) already computed for the same model, image, target and variant are read back,
    and only the others computed (:class:`helpers.map_cache.CachedMaps`).
    """
    from .map_cache import CachedMaps, weights_fingerprint
    from .methods import explain_many
    from .viz import progress_bar

    if (ids is None) != (cache is None):
        raise ValueError("pass both ids and cache (to reuse cached maps) or neither")
    device = next(model.parameters()).device
    pixel_values, targets = pixel_values.to(device), torch.as_tensor(targets).to(device)
    cached = {}
    if cache is not None:
        fingerprint = weights_fingerprint(model)
        cached = {label: CachedMaps(cache, model, method, options, ids, targets.tolist(), fingerprint)
                  for label, (method, options) in variants.items()}
    needed = {label: set(cached[label].missing if cache is not None else range(len(pixel_values)))
              for label in variants}
    todo = sorted(set().union(*needed.values()))
    fresh = {label: {} for label in variants}
    chunks = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    for chunk in progress_bar(chunks, progress, desc="explain"):
        wanted = [label for label in variants if needed[label].intersection(chunk)]
        explained = explain_many(model, pixel_values[chunk], [variants[label] for label in wanted],
                                 targets[chunk])
        for label, maps in zip(wanted, explained):
            fresh[label] |= {n: m.cpu() for n, m in zip(chunk, maps) if n in needed[label]}
    maps = {}
    for label in variants:
        positions = sorted(fresh[label])
        if cache is None:
            maps[label] = torch.stack([fresh[label][n] for n in positions])
            continue
        if positions:
            cached[label].add(positions, [fresh[label][n] for n in positions])
        maps[label] = cached[label].maps()
    if references:
        shape = next(iter(maps.values())).shape if maps else (len(pixel_values), *patch_grid(model, pixel_values))
        maps[RANDOM] = metrics.random_order_maps(shape, seed=seed)
        maps[UNIFORM] = torch.ones(shape)
    return maps


def _explain(method, options, model, pixel_values, targets):
    """:func:`helpers.explain` with the arguments in the order ``partial`` needs."""
    return explain(model, pixel_values, method, target=targets, **options)


def localisation_scores(maps: dict, masks: torch.Tensor, tolerance: float = 15.0) -> pd.DataFrame:
    """One row per variant and image: ``variant, image, pointing`` (hit, bool) ``, mass`` (share of
    positive relevance on the object) ``, area`` (the object's share of the image: what a uniform
    map scores in mass). See :func:`helpers.metrics.pointing_game` and
    :func:`helpers.metrics.relevance_mass`."""
    area = masks.flatten(1).float().mean(1)
    frames = [pd.DataFrame({"variant": label, "image": range(len(masks)),
                            "pointing": metrics.pointing_game(m, masks, tolerance).numpy(),
                            "mass": metrics.relevance_mass(m, masks).numpy(),
                            "area": area.numpy()})
              for label, m in maps.items()]
    return pd.concat(frames, ignore_index=True)


class HeadSubset(torch.nn.Module):
    """The model's logits restricted to some classes, ``z[:, head_indices]``: the ImageNet-A
    protocol (Hendrycks et al. 2021) scores a 1000-way head on its 200 classes only, so the
    softmax of a deletion curve is taken over those classes (targets become positions among them).
    """

    def __init__(self, model, head_indices):
        super().__init__()
        self.model = model
        self.register_buffer("head_indices", torch.as_tensor(list(head_indices)), persistent=False)

    def forward(self, pixel_values):
        return masked_logits(self.model(pixel_values=pixel_values).logits, self.head_indices)


def predicted_targets(model, pixel_values: torch.Tensor, head_indices=None,
                      batch_size: int = 32) -> torch.Tensor:
    """Each image's predicted class as a model-head index (CPU); with ``head_indices``, the arg-max
    over those classes only (the masked protocol of :mod:`helpers.predict`)."""
    head = torch.as_tensor(list(head_indices)) if head_indices is not None else None
    device = next(model.parameters()).device
    predictions = []
    with torch.no_grad():
        for pixels in pixel_values.split(batch_size):
            logits = model(pixel_values=pixels.to(device)).logits.cpu()
            predictions.append(logits.argmax(-1) if head is None
                               else head[masked_logits(logits, head).argmax(-1)])
    return torch.cat(predictions)


def scoring_copy(model):
    """A copy of ``model`` for scoring only (logits, no attention weights, no gradients): the same
    weights with fused attention (``attn_implementation="sdpa"``), about twice as fast per forward
    pass on a CPU as the eager attention the explanation methods need; logits agree to ~1e-6.
    ``model`` itself is left as it is (the copy has its own config). A model without SDPA support
    is returned as it is."""
    fast = copy.deepcopy(model)
    try:
        fast.set_attn_implementation("sdpa")
    except (AttributeError, ImportError, ValueError):
        return model
    return fast


def _patch_embedding_of_cells(model, pixel_values, grid):
    """``model``'s patch-embedding convolution when the cells of a ``grid`` (rows, columns) map
    are its patches (then the deletion curves assemble perturbed images at the embedding), else
    None."""
    from .backbones import adapter_for

    conv = adapter_for(model).patch_embedding()
    return conv if metrics.patchifies(conv, pixel_values.shape, grid) else None


def faithfulness_scores(model, pixel_values: torch.Tensor, targets, maps: dict, steps: int = 49,
                        baseline="zero", head_indices=None, batch_size: int = 64,
                        seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deletion and insertion (Petsiuk et al. 2018) of every map in ``maps``, same protocol for all.

    Returns ``(areas, curves)``: ``areas`` has one row per variant and image (``variant, image,
    deletion, insertion``: the areas under the target-probability curves; deletion lower is
    better, insertion higher); ``curves`` the mean curve per variant (``variant, mode, fraction,
    probability``). ``targets`` are model-head indices; with ``head_indices`` the softmax runs over
    those classes only (:class:`HeadSubset`). The perturbed images are scored by
    :func:`scoring_copy` (fused attention), the maps of one shape together: an image two maps
    perturb alike at some step is scored once. See :func:`helpers.metrics.deletion_insertion`.
    """
    targets = torch.as_tensor(targets).cpu()
    fast = scorer = scoring_copy(model)
    positions = targets
    by_shape = {}  # maps of one shape are scored together (images several maps perturb alike: once)
    for label, variant_maps in maps.items():
        by_shape.setdefault(tuple(variant_maps.shape), []).append(label)
    if head_indices is not None:
        scorer = HeadSubset(fast, head_indices)
        lookup = {int(h): p for p, h in enumerate(head_indices)}
        positions = torch.tensor([lookup[int(t)] for t in targets])
    ends = metrics.end_probabilities(scorer, pixel_values, positions, baseline, batch_size)  # shared
    results = {}
    for shape, labels in by_shape.items():
        result = metrics.deletion_insertion(scorer, pixel_values, torch.stack([maps[label] for label in labels]),
                                            positions, steps=steps, baseline=baseline, batch_size=batch_size,
                                            seed=seed, ends=ends,
                                            patch_embedding=_patch_embedding_of_cells(fast, pixel_values, shape[-2:]))
        results |= {label: (result, v) for v, label in enumerate(labels)}
    areas, curves = [], []
    for label in maps:
        result, v = results[label]
        areas.append(pd.DataFrame({"variant": label, "image": range(len(targets)),
                                   "deletion": result.deletion_area[v].cpu().numpy(),
                                   "insertion": result.insertion_area[v].cpu().numpy()}))
        for mode in ("deletion", "insertion"):
            curves.append(pd.DataFrame({"variant": label, "mode": mode,
                                        "fraction": result.fractions.numpy(),
                                        "probability": getattr(result, mode)[v].mean(0).cpu().numpy()}))
    return pd.concat(areas, ignore_index=True), pd.concat(curves, ignore_index=True)


def sanity_scores(model, pixel_values: torch.Tensor, targets, variants: dict, seed: int = 0,
                  progress: bool | None = None, maps: dict | None = None) -> pd.DataFrame:
    """Cascading randomisation (Adebayo et al. 2018) of every variant: one row per variant, stage
    and image, ``variant, step, stage, image, rho, rho_abs`` (Spearman correlation with the
    original map: ``rho`` of the maps, ``rho_abs`` of their magnitudes ``|map|``, the paper's
    second reading, from the same explanations; ``step`` 1 = the head randomised, the last = every
    weight randomised). See :func:`helpers.metrics.cascading_randomization`: one cascade for all
    variants, explained together at each stage (:func:`helpers.methods.explain_many`).
    ``maps``: ``{label: [N, h, w]}`` the trained model's maps of these images for these targets
    where already computed (e.g. by :func:`explain_variants`): they are the cascade's original maps
    instead of being explained again. ``progress``: a bar over the stages (None: unless a batch
    run, :func:`helpers.viz.progress_bar`)."""
    from .methods import explain_many
    from .viz import progress_bar

    targets = torch.as_tensor(targets)
    labels, n_images = list(variants), len(pixel_values)
    maps = maps or {}
    explained = []  # every variant's maps, concatenated: the original, then one a stage
    bar = progress_bar(total=len(metrics.randomization_stages(model)) + 1, show=progress, desc="sanity")

    def explain_fn(randomised, pixels, chosen):
        if explained or not all(label in maps for label in labels):
            stage_maps = explain_many(randomised, pixels, [variants[label] for label in labels], chosen)
        else:  # the untouched model's maps, given
            stage_maps = [maps[label].to(pixels.device) for label in labels]
        explained.append(torch.cat([m.detach() for m in stage_maps]))
        bar.update(1)
        return explained[-1]

    stages = metrics.cascading_randomization(model, explain_fn, pixel_values, targets, seed=seed)
    bar.close()
    original = explained[0].abs()
    frames = []
    for step, ((stage, rho), stage_maps) in enumerate(zip(stages, explained[1:]), start=1):
        rho_abs = metrics.spearman_per_image(original, stage_maps.abs()).float().cpu()
        for k, label in enumerate(labels):
            part = slice(k * n_images, (k + 1) * n_images)
            frames.append(pd.DataFrame({"variant": label, "step": step, "stage": stage,
                                        "image": range(n_images), "rho": rho[part].numpy(),
                                        "rho_abs": rho_abs[part].numpy()}))
    frame = pd.concat(frames, ignore_index=True)
    order = {label: k for k, label in enumerate(labels)}  # variant by variant, as before
    return frame.sort_values(["variant", "step", "image"], key=lambda c: c.map(order) if c.name == "variant" else c,
                             kind="stable").reset_index(drop=True)


def bench_costs(variants: dict, costs: pd.DataFrame, batch: int = 8, threads: int = 1) -> pd.DataFrame:
    """One row per variant: ``variant, cost`` = seconds per image of the variant / seconds per image
    of one forward pass (no gradient), read from the table ``make bench`` wrote
    (:func:`helpers.bench.load_costs`: ViT-B/16, interleaved repeats, medians) at ``batch`` and
    ``threads``. The forward pass's time is that of the rows measured against it (attention,
    rollout: seconds / ratio). A variant matches a row by its method and canonical options
    (:func:`helpers.map_cache.canonical_options`); variants the bench does not run are NaN."""
    import ast

    from .map_cache import canonical_options

    def parsed(text: str) -> dict:
        options = {}
        for pair in str(text).split():
            key, value = pair.split("=", 1)
            try:
                options[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                options[key] = value
        return options

    ours = costs[(costs["implementation"] == "helpers") & (costs["batch"] == batch)
                 & (costs["threads"] == threads)]
    if ours.empty:
        raise ValueError(f"the cost table has no row of this course's methods at batch {batch}, "
                         f"{threads} thread(s): run `make bench`")
    floored = ours[ours["floor"] == "forward"]
    forward_seconds = (floored["seconds_per_image"] / floored["ratio"]).median()
    measured = [(row.method, canonical_options(row.method, parsed(row.variant)), row.seconds_per_image)
                for row in ours.itertuples()]
    rows = []
    for label, (method, options) in variants.items():
        wanted = canonical_options(method, options)
        seconds = [s for m, o, s in measured if m == method and o == wanted]
        rows.append({"variant": label, "cost": seconds[0] / forward_seconds if seconds else float("nan")})
    return pd.DataFrame(rows)


def mean_ci(scores: pd.DataFrame, column: str, seed: int = 0) -> pd.DataFrame:
    """Per variant (in order of first appearance): ``column``, ``column_lo``, ``column_hi``.

    Booleans get the Wilson interval, numbers the percentile bootstrap (both 95 %,
    :func:`helpers.metrics.bootstrap_ci`). The bounds are widened to contain the mean where
    round-off puts them a hair outside (Wilson at 0 or n hits, a bootstrap of equal values), so
    ``mean - lo`` and ``hi - mean`` are never negative (error bars)."""
    rows = {}
    for label, group in scores.groupby("variant", sort=False):
        values = torch.tensor(group[column].to_numpy())
        mean, lo, hi = metrics.bootstrap_ci(values, seed=seed)
        rows[label] = {column: mean, f"{column}_lo": min(lo, mean), f"{column}_hi": max(hi, mean)}
    return pd.DataFrame.from_dict(rows, orient="index")


def results_table(localisation: pd.DataFrame | None = None, faithfulness: pd.DataFrame | None = None,
                  sanity: pd.DataFrame | None = None, cost: pd.DataFrame | None = None,
                  seed: int = 0) -> pd.DataFrame:
    """One row per variant, one column group per metric (missing inputs are left out):

    ``pointing`` (+ ``_lo``, ``_hi``: Wilson 95 %), ``mass`` (+ bootstrap 95 %), ``deletion``,
    ``insertion`` (areas, + bootstrap 95 %), ``rho_head`` (mean Spearman rho once the head is
    randomised), ``rho_final`` (once every weight is), ``cost`` (x one forward pass). Variants
    appear in order of first appearance; a metric a variant has no score for is NaN.
    """
    parts = []
    if localisation is not None:
        parts += [mean_ci(localisation, "pointing", seed), mean_ci(localisation, "mass", seed)]
    if faithfulness is not None:
        parts += [mean_ci(faithfulness, "deletion", seed), mean_ci(faithfulness, "insertion", seed)]
    if sanity is not None:
        per_step = sanity.groupby(["variant", "step"], sort=False)["rho"].mean().unstack("step")
        parts.append(pd.DataFrame({"rho_head": per_step[per_step.columns.min()],
                                   "rho_final": per_step[per_step.columns.max()]}))
    if cost is not None:
        parts.append(cost.set_index("variant")[["cost"]])
    order = list(dict.fromkeys(label for part in parts for label in part.index))
    table = pd.concat(parts, axis=1).reindex(order)
    table.index.name = "variant"
    return table


COLUMN_TITLES = {"pointing": "pointing game", "mass": "relevance mass", "deletion": "deletion AUC ↓",
                 "insertion": "insertion AUC ↑", "rho_head": "sanity ρ (head)",
                 "rho_final": "sanity ρ (final)", "cost": "cost (× forward)"}


def formatted(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The table for reading: ``value [lo, hi]`` strings where an interval exists, blanks for NaN,
    columns titled by :data:`COLUMN_TITLES`."""
    shown = {}
    for column in table.columns:
        if column.endswith(("_lo", "_hi")):
            continue
        value = table[column]
        if f"{column}_lo" in table:
            lo, hi = table[f"{column}_lo"], table[f"{column}_hi"]
            text = [f"{v:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]" if pd.notna(v) else ""
                    for v, a, b in zip(value, lo, hi)]
        else:
            text = [f"{v:.{digits}f}" if pd.notna(v) else "" for v in value]
        shown[COLUMN_TITLES.get(column, column)] = text
    return pd.DataFrame(shown, index=table.index)
