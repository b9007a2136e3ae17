"""Which world runs, and the images of either world behind one function.

The *real* world is ``google/vit-base-patch16-224`` (Dosovitskiy et al. 2021) with ImageNet-A; the
*offline* world is a tiny ViT trained in this repository on generated scenes. One setting chooses:
the ``world`` argument (a notebook's ``WORLD`` parameter), else ``$COURSE_WORLD``, else ``"auto"``:

- ``"offline"``: the tiny model and the scenes; never touches the network.
- ``"real"``: ViT-B/16 and ImageNet-A; loading fails with one clear
  :class:`~helpers.models.WorldUnavailable` message if either cannot be had.
- ``"auto"``: real only when the model *and* the data can be had (cached, on disk, or reachable),
  else offline -- announced in one line that names what is missing.

===============  ==========================================  =====================================
split            real world                                  offline world
===============  ==========================================  =====================================
``adversarial``  ImageNet-A (Hendrycks et al. 2021)          the scenes' ``hard`` split
``standard``     -- (ImageNet itself is not part of the      the scenes' ``standard`` split (with
                 course)                                     object masks)
===============  ==========================================  =====================================
"""
from __future__ import annotations

import os
from pathlib import Path

from .models import REAL_MODEL, model_available

WORLDS = ("auto", "real", "offline")
SPLITS = ("adversarial", "standard")


def set_data_dir(path=None) -> Path:
    """Point the course's data and caches at ``path`` (a notebook's ``DATA_DIR`` parameter) by
    setting ``$COURSE_DATA_DIR``; ``None`` keeps the current setting. Returns the folder in use.

    On Colab, a folder on Google Drive keeps ImageNet-A and the prediction caches across restarts.
    """
    from .data import data_root

    if path is not None:
        os.environ["COURSE_DATA_DIR"] = str(Path(path).expanduser())
    return data_root()


def resolve_world(world: str | None = None, announce: bool = True, data_dir=None) -> str:
    """Return ``"real"`` or ``"offline"`` from ``world`` / ``$COURSE_WORLD`` / ``"auto"``.

    ``auto`` picks the real world only when ViT-B/16 (cached or hub reachable) and ImageNet-A
    (extracted, archived or downloadable, under ``data_dir`` / ``$COURSE_DATA_DIR``) can both be
    had, and says in one plain line which world runs and why. ``real`` and ``offline`` are
    returned as asked.
    """
    world = (world or os.environ.get("COURSE_WORLD") or "auto").strip().lower()
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r} (set COURSE_WORLD or the "
                         "notebook's WORLD parameter)")
    if world != "auto":
        return world
    from .data import imagenet_a_available

    model_ok, model_why = model_available(REAL_MODEL)
    data_ok, data_why = imagenet_a_available(data_dir)
    world = "real" if model_ok and data_ok else "offline"
    if announce:
        what = ("ViT-B/16 on ImageNet-A" if world == "real"
                else "the tiny ViT on generated scenes")
        if world == "real":
            reason = f"{model_why} and {data_why}"
        else:
            reason = "; ".join(why for ok, why in ((model_ok, model_why), (data_ok, data_why))
                               if not ok)
        print(f"World: {world} ({what}), because {reason}. Set COURSE_WORLD=real|offline to "
              "choose.")
    return world


def load_dataset(world: str | None = None, split: str = "adversarial", n_per_class: int | None = None,
                 seed: int = 0, processor=None, download: bool = True, data_dir=None):
    """Return the dataset of ``world`` (see :func:`resolve_world`) for ``split``.

    ``n_per_class``: a seeded, class-balanced subset (``None``: all of ImageNet-A; offline scenes
    are generated, so ``None`` means 50 per class). ``data_dir``: where ImageNet-A is or goes
    (else ``$COURSE_DATA_DIR``, else ``data/``). Items are dicts with ``pixel_values``, ``label``
    (an index of the model's head), ``class_idx``, ``class_name`` and ``id``; see the datasets.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if resolve_world(world, announce=False, data_dir=data_dir) == "offline":
        from .scenes import SceneDataset

        scene_split = "hard" if split == "adversarial" else "standard"
        return SceneDataset(split=scene_split, n_per_class=n_per_class or 50, seed=seed,
                            processor=processor)
    if split == "standard":
        raise ValueError("The real world has only the 'adversarial' split (ImageNet-A); object "
                         "masks exist only in the offline world: use world='offline'.")
    from .data import ImageNetA, ensure_imagenet_a

    return ImageNetA(ensure_imagenet_a(data_dir, download=download), processor=processor,
                     n_per_class=n_per_class, seed=seed)
