"""helpers: the thin package shared by the course notebooks.

Public names (imported lazily, so `import helpers` stays fast):

- ``load_model``, ``WorldUnavailable``      (helpers.models)  the model, in either world
- ``resolve_world``, ``set_data_dir``,
  ``load_dataset``                           (helpers.world)   which world runs; its images
- ``ImageNetA``, ``imagenet_a_classes``      (helpers.data)    ImageNet-A
- ``SceneDataset``                           (helpers.scenes)  the generated scenes with masks
- ``explain``, ``METHODS``                   (helpers.methods) one verb for every explanation method
"""
from importlib import import_module

_NAMES = {
    "resolve_world": "helpers.world",
    "set_data_dir": "helpers.world",
    "load_model": "helpers.models",
    "WorldUnavailable": "helpers.models",
    "load_dataset": "helpers.world",
    "ImageNetA": "helpers.data",
    "imagenet_a_classes": "helpers.data",
    "SceneDataset": "helpers.scenes",
    "explain": "helpers.methods",
    "METHODS": "helpers.methods",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
