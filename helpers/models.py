"""Load a Hugging Face ViT classifier in either of the course's two worlds, and run it in one precision.

The *real* world is ``google/vit-base-patch16-224`` (Dosovitskiy et al. 2021) from the Hugging Face
hub; the *offline* world is a tiny ViT trained in this repository on generated scenes (weights
under ``data/tiny_vit/``), with a tiny DeiT and a tiny DINOv2 beside it (``data/tiny_deit/``,
``data/tiny_dinov2/``; :mod:`helpers.train_tiny`). All go through :func:`load_model`, which returns
the checkpoint's classifier class (one that has an adapter in :mod:`helpers.backbones`) with eager attention
(transformers 5 defaults to SDPA, which silently returns no attention maps) in eval mode, and its
image processor. Which world runs is decided by :func:`helpers.world.resolve_world`.

Precision: :func:`inference_precision` is the one place that decides how predictions are computed
(``"auto"``: bfloat16 autocast on a GPU that has it natively, float16 autocast on an older one
such as Colab's T4, float32 on the CPU). Whatever is cached and whatever is
compared with it later is computed through it, with the same setting.
"""
from __future__ import annotations

import os
import socket
from contextlib import nullcontext
from pathlib import Path

import torch

REAL_MODEL = "google/vit-base-patch16-224"
_DATA = Path(__file__).resolve().parent.parent / "data"
# load_model's names for the models trained in this repository, and their folders.
TINY_MODELS = {"tiny": _DATA / "tiny_vit", "tiny-deit": _DATA / "tiny_deit",
               "tiny-dinov2": _DATA / "tiny_dinov2"}
TINY_DIR = TINY_MODELS["tiny"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_HUB_HOST = "huggingface.co"


class WorldUnavailable(RuntimeError):
    """The real world (ViT-B/16 weights or ImageNet-A) cannot be had on this machine.

    In Jupyter only the message is shown, not a wall of traceback: the message says what to do.
    """

    def _render_traceback_(self):  # IPython's hook for custom exception display
        return [f"{type(self).__name__}: {self}"]


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
    """True if the repo's config and weights (safetensors, or PyTorch's ``pytorch_model.bin``
    where the repo has no safetensors) are in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    def cached(file):
        return isinstance(try_to_load_from_cache(repo_id, file), str)

    return cached("config.json") and (cached("model.safetensors") or cached("pytorch_model.bin"))


def model_available(repo_id: str = REAL_MODEL) -> tuple[bool, str]:
    """``(available, why)``: can ``repo_id`` be loaded (cached, or the hub reachable)?"""
    if _is_cached(repo_id):
        return True, f"{repo_id} is in the local Hugging Face cache"
    if _hub_reachable():
        return True, "the Hugging Face hub is reachable"
    return False, f"{repo_id} is not cached and the Hugging Face hub is unreachable"


def _native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA compute capability >= 8: A100, L4,
    H100 ...). Older GPUs such as Colab's free T4 only emulate it, much slower than float16."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(precision: str, device) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``precision`` on ``device``.

    ``"auto"`` takes ``$COURSE_PRECISION`` if set (the tests set ``bf16`` to rehearse the GPU path
    on the CPU), else on CUDA bf16 where the GPU has it natively and fp16 where it does not (a T4),
    and fp32 elsewhere.
    """
    if precision == "auto":
        precision = os.environ.get("COURSE_PRECISION") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} (or $COURSE_PRECISION), got "
                         f"{precision!r}")
    if precision == "auto":
        device = torch.device(device)
        if device.type != "cuda":
            return "fp32"
        return "bf16" if _native_bf16(device) else "fp16"
    return precision


def inference_precision(device, precision: str = "auto"):
    """The autocast context predictions run under: bfloat16 or float16 autocast for ``"bf16"`` /
    ``"fp16"`` (on CUDA, or on the CPU as a rehearsal of CUDA), nothing for ``"fp32"``."""
    device = torch.device(device)
    dtype = _AUTOCAST_DTYPES.get(resolve_precision(precision, device))
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def load_model(name: str | None = None, world: str | None = None, device: str = "cpu"):
    """Load ``(model, processor)``: an image classifier (eager attention, eval mode).

    ``name``: ``"tiny"``, ``"tiny-deit"`` or ``"tiny-dinov2"`` (the offline models in ``data/``,
    :data:`TINY_MODELS`), a hub id such as ``"google/vit-base-patch16-224"`` or
    ``"facebook/deit-base-distilled-patch16-224"``, or a local directory saved with
    ``save_pretrained``. ``None`` takes the world's model (see :func:`helpers.world.resolve_world`).
    The class is the checkpoint's own (``config.architectures``: ViT, DeiT with or without teacher,
    DINOv2 with or without registers). Weights are read from ``model.safetensors``, or from
    ``pytorch_model.bin`` where a repo has no safetensors on its main branch (the DeiT repos:
    transformers reads it with ``torch.load(weights_only=True)``, which runs no code); no remote
    code is ever run.
    """
    if name is None:
        from .world import resolve_world

        name = REAL_MODEL if resolve_world(world) == "real" else "tiny"
    if name in TINY_MODELS:
        folder = TINY_MODELS[name]
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"The tiny model {name!r} is missing from data/{folder.name}/; "
                                    "rebuild it with `make tiny-models`.")
        return _from_pretrained(str(folder), device, local_only=True)
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


def _model_class(source: str, local_only: bool):
    """The transformers class named by the checkpoint's ``config.architectures`` (ViT when it
    names none), if :mod:`helpers.backbones` has an adapter for it."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_only)
    name = (config.architectures or ["ViTForImageClassification"])[0]
    from .backbones import ADAPTERS

    if name not in ADAPTERS:
        raise ValueError(f"{source!r} is a {name}; the course explains only "
                         f"{', '.join(ADAPTERS)}.")
    return getattr(transformers, name)


def _from_pretrained(source: str, device: str, local_only: bool):
    from transformers import AutoImageProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar would freeze in saved notebooks
    model = _model_class(source, local_only).from_pretrained(
        source, attn_implementation="eager", local_files_only=local_only)
    processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    return model.to(device).eval(), processor


def untrained_copy(model, seed: int = 0):
    """The same architecture with freshly initialised (random) weights, in eval mode, on the same
    device: the baseline a floor must separate the trained model from. The global RNG is left as
    it was."""
    import copy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(model)(copy.deepcopy(model.config))
    return fresh.eval().to(next(model.parameters()).device)
