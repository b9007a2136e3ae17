"""Explanation maps computed once, reused by every later notebook that asks for the same one.

Notebooks 03, 04 and 05 explain the same standard scenes with the same methods (05 scores every
method on the scenes 03 and 04 already explained). :class:`CachedMaps` keeps each patch map of an
image, by image id and target class, in

``<data>/cache/<world>/maps/<model tag>/<method>-<key>.pt``

and computes only the ones not there yet. The file name holds everything a map depends on:

- the model: :func:`weights_fingerprint`, a hash of *every* parameter and buffer (a retrained,
  untrained or otherwise modified model gets its own folder);
- the method and its options, written out canonically (:func:`canonical_options`: defaults
  filled in, AttnLRP's presets as their gammas, any order), and the source code of the methods and backbone adapters
  (:func:`code_fingerprint`: a changed implementation starts a new file instead of reading stale
  maps).

A map depends on nothing else: explanations run in float32 whatever the caller's autocast
(:func:`helpers.explain`). Maps computed in another batch can differ from a fresh computation in
the last float32 bits (other kernels); a cached map is reused exactly, so a re-run reproduces it.
Delete the ``maps`` folder to recompute everything.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .methods import _base


def weights_fingerprint(model) -> str:
    """12 hex digits of a SHA-1 over every parameter and buffer of ``model`` (names and values)."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def code_fingerprint() -> str:
    """8 hex digits of a SHA-1 over the source of every method (``helpers/methods/``) and backbone
    adapter (``helpers/backbones/``, where present): a changed implementation is a new key."""
    root = Path(_base.__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for source in sorted([*(root / "methods").glob("*.py"), *(root / "backbones").glob("*.py")]):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:8]


def canonical_options(method: str, options: dict) -> dict:
    """``options`` as the method computes with them: its keyword defaults filled in, AttnLRP's
    ``preset`` replaced by its two gammas (float), so that equal explanations share a key
    (``{}`` and ``{"head_fusion": "mean"}`` for rollout; ``preset="very_aggressive"`` and
    ``conv_gamma=100, lin_gamma=1`` for AttnLRP)."""
    import inspect

    from .methods import METHODS

    function = METHODS[method]
    if method == "attnlrp":  # registered through a lazy wrapper: read the real signature
        from .methods.attnlrp import attnlrp as function
    defaults = {p.name: p.default for p in inspect.signature(function).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "resolution"}
    options = {**defaults, **options}
    if method == "attnlrp":
        from .methods.attnlrp import resolve_gammas

        gammas = resolve_gammas(options.pop("preset"), options["conv_gamma"], options["lin_gamma"])
        options |= {key: None if g is None else float(g) for key, g in zip(("conv_gamma", "lin_gamma"), gammas)}
    return options


def variant_file(folder, model, method: str, options: dict, fingerprint: str | None = None) -> Path:
    """Where the maps of ``method`` with ``options`` on ``model`` are kept under ``folder``."""
    from .predict import model_tag

    canonical = json.dumps({"method": method, "options": canonical_options(method, options),
                            "code": code_fingerprint()},
                           sort_keys=True, default=repr)
    key = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    model_folder = f"{model_tag(model).rsplit('-', 1)[0]}-{fingerprint or weights_fingerprint(model)}"
    return Path(folder) / "maps" / model_folder / f"{method}-{key}.pt"


def _read(path: Path) -> dict:
    return torch.load(path) if path.exists() else {}


def _write(path: Path, maps: dict) -> None:
    from .predict import write_atomically

    write_atomically(path, lambda partial: torch.save(maps, partial))


class CachedMaps:
    """The cached maps of one variant (``method`` with ``options`` on ``model``) for images ``ids``
    explained for ``targets`` (one class each), in the file :func:`variant_file` under ``folder``:
    :attr:`missing` lists the positions (in ``ids``) not cached yet, :meth:`add` stores maps
    computed for some of them, :meth:`maps` returns all ``[N, h, w]`` in order. ``fingerprint``:
    :func:`weights_fingerprint` of ``model`` if already known."""

    def __init__(self, folder, model, method: str, options: dict, ids, targets,
                 fingerprint: str | None = None):
        ids = [str(i) for i in ids]
        if len(ids) != len(targets):
            raise ValueError(f"{len(ids)} ids for {len(targets)} targets: give one id per image")
        self.path = variant_file(folder, model, method, options, fingerprint)
        self.stored = _read(self.path)
        self.keys = [f"{image_id}|{int(target)}" for image_id, target in zip(ids, targets)]

    @property
    def missing(self) -> list[int]:
        return [n for n, key in enumerate(self.keys) if key not in self.stored]

    def add(self, positions, maps: torch.Tensor) -> None:
        """Store ``maps[k]`` as the map of image ``positions[k]`` and write the file."""
        self.stored |= {self.keys[n]: m.detach().cpu().clone() for n, m in zip(positions, maps)}
        _write(self.path, self.stored)

    def maps(self) -> torch.Tensor:
        return torch.stack([self.stored[key] for key in self.keys])
