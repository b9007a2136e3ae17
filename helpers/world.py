"""The images of either world behind one function, so a notebook switches worlds with one parameter.

===============  ==========================================  =====================================
split            real world                                  offline world
===============  ==========================================  =====================================
``adversarial``  ImageNet-A (Hendrycks et al. 2021)          the scenes' ``hard`` split
``standard``     -- (ImageNet itself is not part of the      the scenes' ``standard`` split (with
                 course)                                     object masks)
===============  ==========================================  =====================================
"""
from __future__ import annotations

from .models import resolve_world

SPLITS = ("adversarial", "standard")


def load_dataset(world: str | None = None, split: str = "adversarial", n_per_class: int | None = None,
                 seed: int = 0, processor=None, download: bool = True):
    """Return the dataset of ``world`` (see :func:`helpers.models.resolve_world`) for ``split``.

    ``n_per_class``: a seeded, class-balanced subset (``None``: all of ImageNet-A; offline scenes
    are generated, so ``None`` means 50 per class). Items are dicts with ``pixel_values``, ``label``
    (an index of the model's head), ``class_idx``, ``class_name`` and ``id``; see the datasets.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if resolve_world(world, announce=False) == "offline":
        from .scenes import SceneDataset

        scene_split = "hard" if split == "adversarial" else "standard"
        return SceneDataset(split=scene_split, n_per_class=n_per_class or 50, seed=seed,
                            processor=processor)
    if split == "standard":
        raise ValueError("The real world has only the 'adversarial' split (ImageNet-A); object "
                         "masks exist only in the offline world: use world='offline'.")
    from .data import ImageNetA, ensure_imagenet_a

    return ImageNetA(ensure_imagenet_a(download=download), processor=processor,
                     n_per_class=n_per_class, seed=seed)
