"""Generated scenes with a ground-truth object mask: the offline world's images.

Each 224x224 RGB scene holds one *target* object of one of ``K = len(CLASS_NAMES)`` classes on a
cluttered background with *distractors* (plain elongated ellipses, bars and wavy strokes) that
belong to no class. A class is a shape with its own fill texture (disk: plain, square: stripes,
triangle: checkerboard, star: dots, ring: concentric bands, cross: grid lines), drawn in a random
colour and a darker or lighter shade of it; colours are drawn independently of the class, so only the object
itself -- shape and texture -- tells the classes apart, and its pixel mask says where the evidence is.

Shapes are implicit: each is a signed distance function ``d(u, v)`` on a rotated, scaled coordinate
grid (negative inside), drawn with a one-pixel anti-aliased edge, ``alpha = clip(0.5 - d_px, 0, 1)``,
and alpha-composited, ``img = (1 - alpha) img + alpha colour``. The target's mask is where its
*visible* alpha (after occluders are drawn over it) exceeds 0.5.

Splits (image ``i`` of split ``s`` with seed ``seed`` is always the same: its random generator is
seeded from ``(s, seed, i)``; class ``i mod K``, so every ``K`` consecutive images are balanced):

- ``standard``: a large (14-30 % of the image area), high-contrast target, 2-5 smaller distractors.
- ``hard``: this world's natural adversarial set, as ImageNet-A is for ViT-B/16: each image has one
  or two of *small* (4-9 % of the area), *low contrast*, *occluded* (one or two bars drawn across
  the target) and *cluttered* (12-18 distractors as large as the target).
- ``background``: the ``standard`` scene with the target left out (label = the removed object's
  class, mask = where it was). A model that classifies these at chance has not learned to read the
  class from the background.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

GENERATOR_VERSION = "scenes-5"
SIZE = 224
CLASS_NAMES = ["disk", "square", "triangle", "star", "ring", "cross"]
SPLITS = ("standard", "hard", "background")
HARD_FACTORS = ("small", "low_contrast", "occluded", "cluttered")

_GRID_Y, _GRID_X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
_NOISE_BANK = np.random.default_rng(20240601).standard_normal((2 * SIZE, 2 * SIZE, 3)).astype(
    np.float32)


# --- signed distance functions, in units of the object's radius -------------------------------

def _regular_polygon(u, v, n, apothem):
    """max_k <(u, v), n_k> - apothem over the n outward edge normals n_k (exact inside)."""
    angles = np.pi / 2 + np.pi / n + 2 * np.pi * np.arange(n) / n
    return np.max([u * np.cos(a) + v * np.sin(a) for a in angles], axis=0) - apothem


def _disk(u, v):
    return np.hypot(u, v) - 1.0


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) - 0.72


def _triangle(u, v):
    return _regular_polygon(u, v, 3, 0.5)


def _star(u, v):
    """Five-pointed star: radius moves linearly (in angle) between 0.42 and 1.0."""
    phase = (np.arctan2(v, u) * (5 / (2 * np.pi)) + 0.25) % 1.0
    radius = 0.42 + 0.58 * np.abs(1.0 - 2.0 * phase)
    return (np.hypot(u, v) - radius) * 0.6


def _ring(u, v):
    return np.abs(np.hypot(u, v) - 0.72) - 0.28


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - 1.0, av - 0.3), np.maximum(au - 0.3, av - 1.0))


def _stripes(x, y, period=16.0):
    return 0.5 + 0.5 * np.sin(x * (2 * np.pi / period))


def _checkerboard(x, y, period=22.0):
    return 0.5 + 0.5 * np.tanh(4 * np.sin(x * (2 * np.pi / period)) * np.sin(y * (2 * np.pi / period)))


def _dots(x, y, period=16.0):
    return np.clip(np.cos(x * (2 * np.pi / period)) + np.cos(y * (2 * np.pi / period)) - 0.8, 0, 1)


def _bands(x, y, period=14.0):
    return 0.5 + 0.5 * np.sin(np.hypot(x, y) * (2 * np.pi / period))


def _grid_lines(x, y, period=16.0):
    k = 2 * np.pi / period
    return np.clip(2 * np.maximum(np.cos(x * k), np.cos(y * k)) - 1, 0, 1)


TEXTURES = {"disk": None, "square": _stripes, "triangle": _checkerboard, "star": _dots,
            "ring": _bands, "cross": _grid_lines}

SHAPES = {"disk": _disk, "square": _square, "triangle": _triangle, "star": _star,
          "ring": _ring, "cross": _cross}


def _ellipse(u, v, width):
    return (np.hypot(u, v / width) - 1.0) * width


def _bar(u, v, width):
    return np.maximum(np.abs(u) - 1.0, np.abs(v) - width)


def _wave(u, v, width):
    return np.maximum(np.abs(u) - 1.0, np.abs(v - 0.25 * np.sin(3.0 * np.pi * u)) - width)


DISTRACTORS = (_ellipse, _bar, _wave)


def _unit_area(sdf, n=400):
    """Area of {sdf < 0} inside [-1.2, 1.2]^2, in units of radius^2 (to size targets by area)."""
    t = np.linspace(-1.2, 1.2, n, dtype=np.float32)
    u, v = np.meshgrid(t, t)
    return float((sdf(u, v) < 0).mean() * 2.4 ** 2)


_UNIT_AREA = {name: _unit_area(fn) for name, fn in SHAPES.items()}


# --- drawing ----------------------------------------------------------------------------------

def _stamp(canvas, sdf, cx, cy, radius, angle, colour, visible=None, extent=(1.1, 1.1),
           texture=None, shade=None, **params):
    """Composite one anti-aliased shape into ``canvas`` (in place); return its alpha as
    ``(rows, cols, alpha_patch)``.

    ``texture(x, y)`` (optional; pixel coordinates in the shape's rotated frame, values in [0, 1])
    blends the fill from ``colour`` (0) to ``shade`` (1).
    The shape lies within ``|u| <= extent[0]``, ``|v| <= extent[1]`` (radius units), which bounds
    the pixels evaluated. ``visible`` (optional, [SIZE, SIZE]) is the alpha of an object below; it
    is multiplied by ``1 - alpha`` (in place), as this shape covers it."""
    cx, cy, radius, c, s = float(cx), float(cy), float(radius), np.cos(angle).item(), np.sin(angle).item()
    half_x = radius * (abs(c) * extent[0] + abs(s) * extent[1]) + 2
    half_y = radius * (abs(s) * extent[0] + abs(c) * extent[1]) + 2
    rows = slice(max(int(cy - half_y), 0), max(min(int(cy + half_y) + 1, SIZE), 0))
    cols = slice(max(int(cx - half_x), 0), max(min(int(cx + half_x) + 1, SIZE), 0))
    dx, dy = _GRID_X[rows, cols] - cx, _GRID_Y[rows, cols] - cy
    u, v = (c * dx + s * dy) / radius, (-s * dx + c * dy) / radius
    patch = np.clip(0.5 - sdf(u, v, **params) * radius, 0.0, 1.0)
    if visible is not None:
        visible[rows, cols] *= 1.0 - patch
    if texture is not None:
        colour = colour + texture(u * radius, v * radius)[..., None] * (shade - colour)
    region = canvas[rows, cols]
    region += patch[..., None] * (colour - region)
    return rows, cols, patch


def _random_colours(rng, n):
    """``n`` colours [n, 3] with uniform hue, saturation in [0.2, 1] and value in [0.25, 1]."""
    h, sat, val = rng.uniform(0, 1, n), rng.uniform(0.2, 1.0, n), rng.uniform(0.25, 1.0, n)
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    rgb = val[:, None] * (1 - sat[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1))
    return rgb.astype(np.float32)


def _random_colour(rng):
    return _random_colours(rng, 1)[0]


def _smooth_noise_bank(cells, seed):
    """Smooth colour noise [2 SIZE, 2 SIZE, 3]: unit Gaussians on a coarse grid, bilinearly
    upsampled (computed once; scenes take random crops of it)."""
    coarse = np.random.default_rng(seed).standard_normal((cells + 1, cells + 1, 3))
    pos = np.linspace(0, cells, 2 * SIZE)
    lo = np.minimum(pos.astype(int), cells - 1)
    weights = np.zeros((2 * SIZE, cells + 1))
    weights[np.arange(2 * SIZE), lo] = 1 - (pos - lo)
    weights[np.arange(2 * SIZE), lo + 1] = pos - lo
    return np.einsum("yi,ijc,xj->yxc", weights, coarse, weights).astype(np.float32)


_SMOOTH_BANKS = [_smooth_noise_bank(cells, 7 + cells) for cells in (8, 12, 16)]


def _background(rng):
    """Two-colour linear gradient + smooth low-frequency colour noise (pixel noise comes last)."""
    c1, c2 = _random_colours(rng, 2)
    phi = rng.uniform(0, 2 * np.pi)
    t = ((_GRID_X - SIZE / 2) * np.cos(phi).item() + (_GRID_Y - SIZE / 2) * np.sin(phi).item()) / SIZE + 0.5
    canvas = c1 + np.clip(t, 0, 1)[..., None] * (c2 - c1)
    bank = _SMOOTH_BANKS[rng.integers(len(_SMOOTH_BANKS))]
    y, x = rng.integers(0, SIZE, size=2)
    canvas += rng.uniform(0.08, 0.15) * bank[y:y + SIZE, x:x + SIZE]
    return canvas


def _draw_distractors(canvas, rng, count, scale, max_width, visible=None):
    for _ in range(count):
        sdf = DISTRACTORS[rng.integers(len(DISTRACTORS))]
        width = rng.uniform(0.05, max_width)
        _stamp(canvas, sdf, rng.uniform(0, SIZE), rng.uniform(0, SIZE), scale * rng.uniform(0.5, 1.2),
               rng.uniform(0, np.pi), _random_colour(rng), visible, (1.0, width + 0.3), width=width)


def _draw_occluders(canvas, rng, cx, cy, radius, visible):
    """One or two thick bars across the target, covering a good part of it."""
    for _ in range(rng.integers(1, 3)):
        width = rng.uniform(0.12, 0.22)
        _stamp(canvas, _bar, cx + rng.uniform(-0.5, 0.5) * radius, cy + rng.uniform(-0.5, 0.5) * radius,
               radius * rng.uniform(1.2, 2.0), rng.uniform(0, np.pi), _random_colour(rng),
               visible, (1.0, width), width=width)


def _target_colour(rng, local_mean, low_contrast):
    """A random colour at RGB distance >= 0.45 from the background under the target, or, for
    low contrast, one at distance 0.08-0.15 from it."""
    if low_contrast:
        direction = rng.normal(size=3).astype(np.float32)
        colour = local_mean + direction / np.linalg.norm(direction) * rng.uniform(0.08, 0.15)
        return np.clip(colour, 0, 1)
    candidates = _random_colours(rng, 12)
    distance = np.linalg.norm(candidates - local_mean, axis=1)
    far = np.flatnonzero(distance >= 0.45)
    return candidates[far[0] if far.size else distance.argmax()]


def _shade(colour, strength):
    """The texture's second colour: ``colour`` moved by ``strength`` towards black if it is light,
    towards white if it is dark, so the texture always shows."""
    target = 0.0 if colour.mean() > 0.5 else 1.0
    return colour + strength * (target - colour)


class Scene(NamedTuple):
    """One generated scene: ``image`` uint8 [224, 224, 3], ``mask`` bool [224, 224]."""

    image: np.ndarray
    mask: np.ndarray
    class_idx: int
    class_name: str
    factors: tuple


def _rng(split, seed, index):
    """The image's own generator, from (split, seed, index); background shares standard's."""
    key = "standard" if split == "background" else split
    code = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
    return np.random.default_rng([code, int(seed), int(index)])


def _hard_factors(rng, split):
    if split != "hard":
        return ()
    chosen = rng.permutation(len(HARD_FACTORS))[: rng.integers(1, 3)]
    return tuple(HARD_FACTORS[k] for k in sorted(chosen))


def make_scene(split="standard", seed=0, index=0) -> Scene:
    """Generate scene ``index`` of ``split`` with ``seed`` (deterministic; see the module doc)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = _rng(split, seed, index)
    class_idx = int(index) % len(CLASS_NAMES)
    name = CLASS_NAMES[class_idx]
    factors = _hard_factors(rng, split)

    canvas = _background(rng)
    area = rng.uniform(0.04, 0.09) if "small" in factors else rng.uniform(0.14, 0.30)
    radius = min(np.sqrt(area * SIZE * SIZE / _UNIT_AREA[name]), 0.45 * SIZE)
    margin = 1.05 * radius + 2
    cx, cy = rng.uniform(margin, SIZE - margin, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    if "cluttered" in factors:
        n_distractors, clutter = rng.integers(12, 19), (max(radius, 40.0), 0.3)
    else:
        n_distractors, clutter = rng.integers(2, 6), (0.6 * radius, 0.2)
    n_behind = rng.integers(0, n_distractors + 1)
    _draw_distractors(canvas, rng, n_behind, *clutter)

    r0, r1 = int(max(cy - radius, 0)), int(min(cy + radius, SIZE))
    c0, c1 = int(max(cx - radius, 0)), int(min(cx + radius, SIZE))
    local_mean = canvas[r0:r1, c0:c1].reshape(-1, 3).mean(0)
    colour = _target_colour(rng, local_mean, "low_contrast" in factors)
    target_layer = np.zeros_like(canvas) if split == "background" else canvas
    shade = _shade(colour, 0.25 if "low_contrast" in factors else 0.75)
    rows, cols, alpha = _stamp(target_layer, SHAPES[name], cx, cy, radius, angle, colour,
                               texture=TEXTURES[name], shade=shade)
    visible = np.zeros((SIZE, SIZE), np.float32)
    visible[rows, cols] = alpha

    _draw_distractors(canvas, rng, n_distractors - n_behind, *clutter, visible)
    if "occluded" in factors:
        _draw_occluders(canvas, rng, cx, cy, radius, visible)

    noise_y, noise_x = rng.integers(0, SIZE, size=2)
    canvas += 0.03 * _NOISE_BANK[noise_y:noise_y + SIZE, noise_x:noise_x + SIZE]
    image = (np.clip(canvas, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Scene(image, visible > 0.5, class_idx, name, factors)


def to_pixel_values(image):
    """uint8 [H, W, 3] -> FloatTensor [3, H, W] as ViTImageProcessor(mean = std = 0.5) makes it for
    a 224x224 image: ``(x / 255 - 0.5) / 0.5``."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() * (1 / 255)
    return (x - 0.5) / 0.5


class SceneDataset(Dataset):
    """``n`` generated scenes of ``split`` with ``seed`` as a torch Dataset (class-balanced:
    image ``i`` has class ``i mod K``).

    Items: ``pixel_values`` FloatTensor [3, 224, 224] (normalised with mean = std = 0.5, by
    ``processor`` if given), ``label`` (= ``class_idx``: the tiny model's head has the K classes in
    dataset order), ``class_idx``, ``class_name``, ``id`` (``"standard/seed0/000012"``) and
    ``mask`` BoolTensor [224, 224], the target's visible pixels (for ``background``: where the
    removed target was). ``raw(i)`` gives the uint8 image and mask for display; ``ids`` lists every
    item's id without generating any scene.
    ``n_per_class`` (``n = n_per_class * K``) is accepted in place of ``n``; default 50 per class.
    """

    class_names = CLASS_NAMES
    head_indices = list(range(len(CLASS_NAMES)))

    def __init__(self, split="standard", n=None, seed=0, processor=None, n_per_class=None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if n is not None and n_per_class is not None:
            raise ValueError("give n or n_per_class, not both")
        self.split, self.seed, self.processor = split, int(seed), processor
        self.n = int(n) if n is not None else len(CLASS_NAMES) * (n_per_class or 50)

    def __len__(self):
        return self.n

    def id_of(self, index) -> str:
        """The stable id of item ``index``: ``"<split>/seed<seed>/<index:06d>"``."""
        return f"{self.split}/seed{self.seed}/{index:06d}"

    @property
    def ids(self) -> list[str]:
        """Every item's id, in index order (cheap: ids follow from split, seed and index)."""
        return [self.id_of(i) for i in range(self.n)]

    def raw(self, index) -> Scene:
        """The scene as generated: uint8 image [224, 224, 3], bool mask, class and hard factors."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} scenes")
        return make_scene(self.split, self.seed, index)

    def __getitem__(self, index):
        scene = self.raw(index)
        if self.processor is None:
            pixel_values = to_pixel_values(scene.image)
        else:
            pixel_values = self.processor(images=scene.image, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixel_values, "label": scene.class_idx,
                "class_idx": scene.class_idx, "class_name": scene.class_name,
                "id": self.id_of(index),
                "mask": torch.from_numpy(scene.mask)}
