"""Load a Hugging Face ViT classifier in either of the course's two worlds.

The *real* world is ``google/vit-base-patch16-224`` (Dosovitskiy et al. 2021) from the Hugging Face
hub with ImageNet-A; the *offline* world is a tiny ViT trained in this repository on generated
scenes (weights under ``data/tiny_vit/``). Both go through :func:`load_model`, which always returns a
``ViTForImageClassification`` with eager attention (transformers 5 defaults to SDPA, which silently
returns no attention maps) in eval mode, and its image processor.

The world is chosen by one setting: the ``world`` argument, else the ``COURSE_WORLD`` environment
variable, else ``"auto"``:

- ``"offline"``: the tiny model and the scenes; never touches the network.
- ``"real"``: ViT-B/16 and ImageNet-A; fails with :class:`WorldUnavailable` if they cannot be had.
- ``"auto"``: real if ViT-B/16 is cached or the hub is reachable, else offline -- announced in one line.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

REAL_MODEL = "google/vit-base-patch16-224"
TINY_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny_vit"
WORLDS = ("auto", "real", "offline")
_HUB_HOST = "huggingface.co"


class WorldUnavailable(RuntimeError):
    """The real world (ViT-B/16 weights or ImageNet-A) cannot be reached from this machine."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub answers a TCP connection (no data is sent)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection((_HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _is_cached(repo_id: str) -> bool:
    """True if the repo's config and safetensors weights are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return all(
        isinstance(try_to_load_from_cache(repo_id, f), str)
        for f in ("config.json", "model.safetensors")
    )


def resolve_world(world: str | None = None, announce: bool = True) -> str:
    """Return ``"real"`` or ``"offline"`` from ``world`` / ``$COURSE_WORLD`` / ``"auto"``.

    ``auto`` picks the real world when ViT-B/16 is cached or the hub is reachable and says in one
    plain line which world runs and why. ``real`` is returned as asked: loading then fails with a
    clear :class:`WorldUnavailable` if the weights or the data cannot be had.
    """
    world = (world or os.environ.get("COURSE_WORLD") or "auto").strip().lower()
    if world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}, got {world!r} (set COURSE_WORLD or the "
                         "notebook's WORLD parameter)")
    if world != "auto":
        return world
    if _is_cached(REAL_MODEL):
        reason, world = f"{REAL_MODEL} is in the local cache", "real"
    elif _hub_reachable():
        reason, world = "the Hugging Face hub is reachable", "real"
    else:
        reason, world = "the Hugging Face hub is unreachable and nothing is cached", "offline"
    if announce:
        what = ("ViT-B/16 on ImageNet-A" if world == "real"
                else "the tiny ViT on generated scenes")
        print(f"World: {world} ({what}), because {reason}. Set COURSE_WORLD=real|offline to choose.")
    return world


def load_model(name: str | None = None, world: str | None = None, device: str = "cpu"):
    """Load ``(model, processor)``: a ViTForImageClassification (eager attention, eval mode).

    ``name``: ``"tiny"`` (the offline model in ``data/tiny_vit``), a hub id such as
    ``"google/vit-base-patch16-224"``, or a local directory saved with ``save_pretrained``.
    ``None`` takes the world's model (see :func:`resolve_world`). Weights are read from safetensors
    only; no remote code is ever run.
    """
    if name is None:
        name = REAL_MODEL if resolve_world(world) == "real" else "tiny"
    if name == "tiny":
        if not (TINY_DIR / "model.safetensors").is_file():
            raise FileNotFoundError(f"The tiny model is missing from {TINY_DIR.name}/; rebuild it "
                                    "with `make tiny-model`.")
        return _from_pretrained(str(TINY_DIR), device, local_only=True)
    if Path(name).is_dir():
        return _from_pretrained(name, device, local_only=True)
    if _is_cached(name):
        return _from_pretrained(name, device, local_only=True)
    if not _hub_reachable():
        raise WorldUnavailable(
            f"Cannot load {name!r}: the Hugging Face hub is unreachable from this machine and the "
            "model is not in the local cache. Run once with internet access (the weights are then "
            "cached), or use the offline world: COURSE_WORLD=offline / WORLD = 'offline'.")
    return _from_pretrained(name, device, local_only=False)


def _from_pretrained(source: str, device: str, local_only: bool):
    from transformers import AutoImageProcessor, ViTForImageClassification

    model = ViTForImageClassification.from_pretrained(
        source, attn_implementation="eager", use_safetensors=True, local_files_only=local_only)
    processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    return model.to(device).eval(), processor
