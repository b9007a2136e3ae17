"""ImageNet-A: class table, download, verification, safe extraction, dataset, 200-class mask.

ImageNet-A (Hendrycks, Zhao, Basart, Steinhardt and Song 2021, "Natural Adversarial Examples",
CVPR) holds 7,500 real photographs of 200 ImageNet classes that ResNet-50 classifiers got wrong.
The official protocol scores a 1000-way ImageNet model on the 200 classes only: the prediction is
``argmax_{c in A} z_c`` over the logits of the 200 classes ``A`` (:func:`head_mask`), not over all
1000. The classes, in label order, with their index in the 1000-way head (``indices_in_1k`` of the
official evaluation code) are in ``data/imagenet_a_classes.tsv``.

Files (the root is the ``root`` argument, else ``$COURSE_DATA_DIR``, else the repository's
``data/``; on Colab point it at Google Drive to keep the download):

- ``<root>/downloads/imagenet-a.tar``: the official archive (687,552,512 bytes, MD5
  ``c3e55429088dc681f30d81f4726b6595``). :func:`download_file` resumes a partial
  ``imagenet-a.tar.part`` with an HTTP Range request and renames it only once size and MD5 match.
- ``<root>/imagenet-a/<wnid>/<file>.jpg``: the extracted images. A copy extracted by hand is
  recognised by its content (:func:`inspect_folder`): the 200 class folders with images; hidden
  files (``.DS_Store``) and stray files are ignored, a few missing images are reported, not fatal. :func:`extract` refuses members
  that would land outside the folder, extracts into a hidden sibling folder and renames it into
  place only when complete (with a ``.complete`` marker), so an interrupted extraction never leaves
  a folder that looks complete. A killed process may leave a hidden ``.imagenet-a-extracting-*``
  folder behind; it is safe to delete.

:func:`ensure_imagenet_a` does all of it once: an extracted folder is used as it is, else a verified
archive is extracted, else the archive is downloaded first. It never downloads a complete file
again.

Where the archive comes from: the official URL, or (a mirror, or the course's own rehearsal of the
real world in its tests) ``$COURSE_IMAGENET_A_URL`` with ``$COURSE_IMAGENET_A_SIZE`` and
``$COURSE_IMAGENET_A_MD5`` (:func:`archive_source`); ``file://`` URLs are accepted.
"""
from __future__ import annotations

import csv
import hashlib
import http.client
import os
import random
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.parse
import urllib.request
import warnings
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from .models import WorldUnavailable

URL = "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar"
SIZE = 687_552_512
MD5 = "c3e55429088dc681f30d81f4726b6595"
N_IMAGES = 7_500
FOLDER = "imagenet-a"
ARCHIVE = "downloads/imagenet-a.tar"
COMPLETE_MARKER = ".complete"
CLASS_TABLE = Path(__file__).resolve().parent.parent / "data" / "imagenet_a_classes.tsv"
DEFAULT_ROOT = CLASS_TABLE.parent
_CHUNK = 1 << 20


# --- the class table and the 200-class mask ----------------------------------------------------

class ImageNetAClasses(NamedTuple):
    """The 200 classes in label order: WordNet ids, indices in the 1000-way head, names."""

    wnids: tuple[str, ...]
    head_indices: tuple[int, ...]
    names: tuple[str, ...]


@lru_cache(maxsize=None)
def imagenet_a_classes(table: str | Path = CLASS_TABLE) -> ImageNetAClasses:
    """Read the class table (tab-separated: ``wnid, index_in_1k, class_name``; 200 rows)."""
    with open(table, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter="\t"))
    return ImageNetAClasses(tuple(row["wnid"] for row in rows),
                            tuple(int(row["index_in_1k"]) for row in rows),
                            tuple(row["class_name"] for row in rows))


def head_mask(num_labels: int = 1000) -> torch.Tensor:
    """BoolTensor ``[num_labels]``, True at the 200 ImageNet-A classes of a 1000-way ImageNet head.

    The official protocol's prediction is ``logits.masked_fill(~mask, -inf).argmax(-1)``.
    """
    mask = torch.zeros(num_labels, dtype=torch.bool)
    mask[list(imagenet_a_classes().head_indices)] = True
    return mask


# --- download and verification -----------------------------------------------------------------

class DownloadError(WorldUnavailable):
    """ImageNet-A could not be downloaded or verified; the message says what to do instead."""


class UnsafeArchiveError(ValueError):
    """A tar member would be written outside the extraction folder (or is a device or a fifo)."""


def data_root(root: str | Path | None = None) -> Path:
    """Where downloads and extracted data go: ``root``, else ``$COURSE_DATA_DIR``, else
    ``data/``."""
    return Path(root or os.environ.get("COURSE_DATA_DIR") or DEFAULT_ROOT).expanduser()


class ArchiveSource(NamedTuple):
    """Where the ImageNet-A archive is downloaded from, and what it must be."""

    url: str
    size: int
    md5: str


def archive_source() -> ArchiveSource:
    """The official archive, or the one named by ``$COURSE_IMAGENET_A_URL`` (a mirror; then
    ``$COURSE_IMAGENET_A_SIZE`` and ``$COURSE_IMAGENET_A_MD5`` say what it must be)."""
    url = os.environ.get("COURSE_IMAGENET_A_URL")
    if not url:
        return ArchiveSource(URL, SIZE, MD5)
    try:
        return ArchiveSource(url, int(os.environ["COURSE_IMAGENET_A_SIZE"]),
                             os.environ["COURSE_IMAGENET_A_MD5"])
    except (KeyError, ValueError):
        raise ValueError("COURSE_IMAGENET_A_URL is set: set COURSE_IMAGENET_A_SIZE (bytes) and "
                         "COURSE_IMAGENET_A_MD5 to the archive's size and MD5 too.") from None


def _url_reachable(url: str, timeout: float = 3.0) -> bool:
    """True if ``url``'s host answers a TCP connection (``file://``: the file exists)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path)).is_file()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def imagenet_a_available(root: str | Path | None = None) -> tuple[bool, str]:
    """``(available, why)``: can ImageNet-A be had under ``root`` (see :func:`data_root`)?

    Yes if a usable extracted copy (:func:`inspect_folder`) or the archive is there, or the
    download source answers. Nothing is downloaded or extracted here.
    """
    root = data_root(root)
    if inspect_folder(root / FOLDER).usable:
        return True, f"ImageNet-A is extracted in {root.name}/{FOLDER}/"
    if (root / ARCHIVE).is_file():
        return True, f"the ImageNet-A archive is in {root.name}/{ARCHIVE}"
    source = archive_source()
    if _url_reachable(source.url):
        return True, "the ImageNet-A download is reachable"
    return False, (f"ImageNet-A is neither in {root.name}/ nor downloadable from "
                   f"{urllib.parse.urlsplit(source.url).netloc or 'its source'}")


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _what_to_do(dest: Path, size: int, md5: str) -> str:
    return (f"To fix: put the ImageNet-A archive ({size:,} bytes, MD5 {md5}) at {dest}, or an "
            f"extracted copy (the folder {FOLDER}/ with its 200 class folders) in {dest.parent.parent}; "
            "to keep the data elsewhere (e.g. Google Drive on Colab) set COURSE_DATA_DIR or the "
            "notebook's DATA_DIR parameter to that folder. Or run offline: COURSE_WORLD=offline "
            "(WORLD = 'offline' in a notebook).")


def verify_file(path: str | Path, size: int = SIZE, md5: str = MD5) -> Path:
    """Raise :class:`DownloadError` unless ``path`` has ``size`` bytes and MD5 ``md5``."""
    path = Path(path)
    have = path.stat().st_size
    if have != size:
        raise DownloadError(f"{path} has {have:,} bytes, expected {size:,}.")
    digest = file_md5(path)
    if digest != md5:
        raise DownloadError(f"{path} has MD5 {digest}, expected {md5}: the file is corrupt.")
    return path


def _resumes_at(response, offset: int) -> bool:
    """True if ``response`` is a 206 whose Content-Range starts at byte ``offset``."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return response.status == 206 and match is not None and int(match.group(1)) == offset


def _fetch_rest(url: str, part: Path, size: int, timeout: float, progress: bool | None) -> None:
    """Append the bytes ``part`` lacks (HTTP Range); start over if the server ignores the range."""
    from .viz import progress_bar

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and not _resumes_at(response, have):
            have = 0
        with open(part, "ab" if have else "wb") as out, progress_bar(
                show=progress, total=size, initial=have, unit="B", unit_scale=True,
                unit_divisor=1024, desc=part.name.removesuffix(".part")) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def download_file(dest: str | Path, url: str = URL, size: int = SIZE, md5: str = MD5,
                  timeout: float = 60.0, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial ``.part``.

    The file gets its final name only after its size and MD5 match, so ``dest`` is always
    complete and an existing ``dest`` is returned as it is. A ``.part`` with a wrong MD5 is deleted
    (resuming cannot mend it); a short one is kept for the next call to resume. Any network failure
    raises :class:`DownloadError`, whose message says what to do instead. ``progress``: show a
    progress bar (None: unless a batch run, :func:`helpers.viz.progress_bar`).
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.exists() and part.stat().st_size > size:
        part.unlink()
    if not part.exists() or part.stat().st_size < size:
        try:
            _fetch_rest(url, part, size, timeout, progress)
        except (OSError, http.client.HTTPException) as error:
            kept = part.stat().st_size if part.exists() else 0
            resume = (f"{kept:,} of {size:,} bytes are kept in {part}; run again to resume. "
                      if kept else "")
            raise DownloadError(f"Could not download {url} ({getattr(error, 'reason', error)}). "
                                f"{resume}{_what_to_do(dest, size, md5)}") from None
    have = part.stat().st_size
    if have < size:
        raise DownloadError(f"The download of {url} stopped after {have:,} of {size:,} bytes "
                            f"(kept in {part}); run again to resume. "
                            f"{_what_to_do(dest, size, md5)}")
    try:
        verify_file(part, size, md5)
    except DownloadError as error:
        part.unlink()
        raise DownloadError(f"{error} It was deleted; run again to download it anew. "
                            f"{_what_to_do(dest, size, md5)}") from None
    os.replace(part, dest)
    return dest


# --- safe extraction ---------------------------------------------------------------------------

def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """Raise :class:`UnsafeArchiveError` if extracting ``member`` into ``dest`` could escape it."""
    name = member.name
    if os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeArchiveError(f"refusing archive member with an absolute path: {name!r}")
    if not _inside(dest / name, dest):
        raise UnsafeArchiveError(f"refusing archive member that points outside the folder: "
                                 f"{name!r}")
    if member.issym() or member.islnk():
        base = (dest / name).parent if member.issym() else dest
        if os.path.isabs(member.linkname) or not _inside(base / member.linkname, dest):
            raise UnsafeArchiveError(f"refusing link {name!r} -> {member.linkname!r}: it points "
                                     "outside the folder")
    if member.isdev():
        raise UnsafeArchiveError(f"refusing device or fifo member {name!r}")


def extract(archive: str | Path, root: str | Path) -> Path:
    """Extract the ImageNet-A ``archive`` to ``<root>/imagenet-a`` and return that folder.

    Every member is checked before anything is written (no absolute paths, no ``..`` escapes, no
    links pointing outside, no devices; :class:`UnsafeArchiveError`), then the archive is extracted
    with tarfile's ``data`` filter into a hidden temporary sibling, marked complete and renamed
    into place, so ``<root>/imagenet-a`` exists only when the extraction finished.
    """
    root = Path(root)
    target = root / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-extracting-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, scratch)
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(scratch, members=members, **safe)
        extracted = scratch / FOLDER
        if not extracted.is_dir():
            raise ValueError(f"{archive} has no top-level {FOLDER}/ folder: it is not the "
                             "ImageNet-A archive. Delete it and run again to download the "
                             "right one.")
        (extracted / COMPLETE_MARKER).write_text(f"extracted from {Path(archive).name}\n")
        os.replace(extracted, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class FolderReport(NamedTuple):
    """What :func:`inspect_folder` found in an ImageNet-A folder."""

    usable: bool
    n_classes: int  # class folders with at least one image
    n_images: int  # files in the class folders (hidden files not counted)
    missing: tuple[str, ...]  # wnids without a folder of images
    marked: bool  # extracted by :func:`extract` (``.complete`` marker)


class IncompleteDataError(FileExistsError, WorldUnavailable):
    """An ImageNet-A folder exists but lacks class folders; the message says what to do."""


def _visible_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def inspect_folder(folder: str | Path) -> FolderReport:
    """Recognise an extracted ImageNet-A copy by its content.

    Usable when it has the ``.complete`` marker of :func:`extract` or, extracted by hand, a
    folder of images for every one of the 200 classes. Hidden files (``.DS_Store``, ``._*``) and
    anything outside the class folders (``README.txt``) are ignored; a copy with a few images
    missing is usable (:func:`ensure_imagenet_a` reports how many).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return FolderReport(False, 0, 0, imagenet_a_classes().wnids, False)
    counts = {wnid: len(_visible_files(folder / wnid)) if (folder / wnid).is_dir() else 0
              for wnid in imagenet_a_classes().wnids}
    missing = tuple(wnid for wnid, n in counts.items() if n == 0)
    marked = (folder / COMPLETE_MARKER).is_file()
    return FolderReport(marked or not missing, len(counts) - len(missing), sum(counts.values()),
                        missing, marked)


def is_complete(folder: str | Path) -> bool:
    """True if ``folder`` is a usable ImageNet-A copy (:func:`inspect_folder`)."""
    return inspect_folder(folder).usable


def ensure_imagenet_a(root: str | Path | None = None, download: bool = True, url: str | None = None,
                      size: int | None = None, md5: str | None = None,
                      progress: bool | None = None) -> Path:
    """Path of the extracted ``<root>/imagenet-a``, extracting and downloading only if needed.

    Order: a usable extracted folder (:func:`inspect_folder`) is returned as it is (missing images
    reported in one warning); else the archive at ``<root>/downloads/imagenet-a.tar`` is verified
    (size, MD5) and extracted; else, if ``download``, it is downloaded first
    (:func:`download_file`). ``root``: see :func:`data_root`; ``url``, ``size``, ``md5`` default
    to :func:`archive_source`.
    """
    source = archive_source()
    url, size, md5 = url or source.url, size or source.size, md5 or source.md5
    root = data_root(root)
    folder, archive = root / FOLDER, root / ARCHIVE
    report = inspect_folder(folder)
    if report.usable:
        if not report.marked and report.n_images < N_IMAGES:
            warnings.warn(f"ImageNet-A in {folder} has {report.n_images:,} of {N_IMAGES:,} images "
                          f"({N_IMAGES - report.n_images:,} missing); the course uses those there.",
                          IncompleteDataWarning, stacklevel=2)
        return folder
    if folder.exists():
        raise IncompleteDataError(
            f"{folder} is incomplete: {report.n_classes} of the 200 ImageNet-A class folders hold "
            f"images (missing e.g. {report.missing[0]}/). Copy the missing class folders there, or "
            f"move the folder away and run again to extract the archive anew.")
    if archive.is_file():
        try:
            verify_file(archive, size, md5)
        except DownloadError as error:
            raise DownloadError(f"{error} Replace it with the official archive, or delete it and "
                                "run again to download it.") from None
    elif download:
        download_file(archive, url, size, md5, progress=progress)
    else:
        raise DownloadError(f"ImageNet-A is not in {root} and download=False. "
                            f"{_what_to_do(archive, size, md5)}")
    return extract(archive, root)


class IncompleteDataWarning(UserWarning):
    """An extracted ImageNet-A copy lacks some images; the course goes on with the rest."""


# --- images and the dataset --------------------------------------------------------------------

class SkippedImageWarning(UserWarning):
    """An image file could not be read; the dataset skipped it (see ``ImageNetA.skipped``)."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB.

    Greyscale, CMYK and palette images are converted by PIL; transparent images (RGBA, LA, a palette
    with transparency) are composited on white; 16-bit integer greyscale (``I;16``, ``I``) is scaled
    ``v / 257`` to 0..255 (PIL's own conversion would clip everything above 255 to white).
    """
    if image.mode.startswith("I"):
        grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257), 0, 255)
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def read_rgb(path: str | Path) -> Image.Image:
    """Decode the image at ``path`` completely and return it as RGB (:func:`to_rgb`).

    Raises (``OSError`` and others from PIL) for a file that is not an image or is truncated: a
    truncated JPEG is *not* decoded partially (PIL's ``LOAD_TRUNCATED_IMAGES`` stays off), because
    a half-grey picture is a different picture.
    """
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)


def default_processor():
    """``google/vit-base-patch16-224``'s preprocessing, built without the hub: bilinear resize to
    224x224, ``x / 255``, then ``(x - 0.5) / 0.5`` per channel."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(do_resize=True, size={"height": 224, "width": 224},
                             resample=Image.Resampling.BILINEAR, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True,
                             image_mean=[0.5] * 3, image_std=[0.5] * 3)


def collate(items: list[dict | None]) -> dict | None:
    """Batch dataset items for a ``DataLoader``, dropping ``None`` (files the dataset could not
    read, reported in its ``skipped``). Tensors are stacked, ints become a LongTensor, strings stay
    lists; a batch with no readable item gives ``None`` (skip it)."""
    kept = [item for item in items if item is not None]
    return default_collate(kept) if kept else None


def _stratified_files(folder: Path, n_per_class: int | None, seed: int) -> list[str]:
    """The file names in a class folder (sorted; hidden files left out) or a seeded subset of them.

    The subset is the first ``n_per_class`` of the sorted names shuffled by a generator seeded with
    ``(seed, class folder name)``: deterministic whatever the filesystem's listing order, the same
    for a class whatever the other classes hold, and nested (the subset for 5 is inside the one for
    10). A class with fewer files gives all it has.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if n_per_class is None:
        return names
    random.Random(f"{seed}:{folder.name}").shuffle(names)
    return sorted(names[:n_per_class])


def _image_folder(root: str | Path | None) -> Path:
    """The folder holding the wnid folders: ``root`` itself or its ``imagenet-a/`` subfolder."""
    if root is None:
        return ensure_imagenet_a(download=False)
    root = Path(root).expanduser()
    return root / FOLDER if (root / FOLDER).is_dir() else root


class ImageNetA(Dataset):
    """ImageNet-A as a torch Dataset over ``<root>/<wnid>/<file>`` (label order of the class table).

    ``root``: the extracted folder (what :func:`ensure_imagenet_a` returns) or its parent; ``None``
    looks in the default place without downloading. Folders that are not ImageNet-A classes and
    files at the top (``README.txt``) are ignored. ``processor``: a Hugging Face image processor
    (``None``: :func:`default_processor`, ViT-B/16's). ``n_per_class``: a class-balanced subset,
    per class the first ``n_per_class`` of its sorted file names shuffled with ``(seed, wnid)`` --
    deterministic whatever the filesystem's listing order, and nested in ``n_per_class`` (the 5 are
    among the 10); ``None`` takes every image.

    Item ``i`` is a dict: ``pixel_values`` FloatTensor[3, 224, 224], ``label`` (index in the
    1000-way head), ``class_idx`` (0..199), ``class_name``, ``wnid``, ``path`` (relative to the
    folder) and ``id`` (``"<wnid>/<file>"``). A file that cannot be read (not an image, truncated,
    corrupt) gives ``None`` instead of an exception: its path and the reason go to ``skipped``
    (``{path: reason}``) and a :class:`SkippedImageWarning` is issued; :func:`collate` (also
    ``ImageNetA.collate``) drops such items from a batch. A plain ``DataLoader`` with
    ``num_workers > 0`` fills ``skipped`` in the workers only; :func:`helpers.predict.predict`, which
    decodes in worker processes, carries each one back to this object and warns in the main process.
    """

    name = FOLDER
    collate = staticmethod(collate)
    reads_files = True  # decoded in worker processes by helpers.predict

    def __init__(self, root: str | Path | None = None, processor=None,
                 n_per_class: int | None = None, seed: int = 0):
        self.root = _image_folder(root)
        classes = imagenet_a_classes()
        self.wnids, self.class_names = list(classes.wnids), list(classes.names)
        self.head_indices = list(classes.head_indices)
        self.processor = processor or default_processor()
        self.samples = [(f"{wnid}/{name}", class_idx) for class_idx, wnid in enumerate(self.wnids)
                        if (self.root / wnid).is_dir()
                        for name in _stratified_files(self.root / wnid, n_per_class, seed)]
        if not self.samples:
            raise FileNotFoundError(f"No ImageNet-A class folders (e.g. {self.wnids[0]}/) with "
                                    f"images in {self.root}: pass the folder ensure_imagenet_a() "
                                    "returns.")
        self.skipped: dict[str, str] = {}

    @property
    def ids(self) -> list[str]:
        """The id of every item, by index, without reading any image."""
        return [path for path, _ in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict | None:
        path, class_idx = self.samples[index]
        try:
            image = read_rgb(self.root / path)
        except Exception as error:  # any undecodable file is skipped, never fatal
            self._skip(path, f"{type(error).__name__}: {error}")
            return None
        pixel_values = self.processor(images=image, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixel_values, "label": self.head_indices[class_idx],
                "class_idx": class_idx, "class_name": self.class_names[class_idx],
                "wnid": self.wnids[class_idx], "path": path, "id": path}

    def _skip(self, path: str, reason: str) -> None:
        if path not in self.skipped:
            warnings.warn(f"ImageNet-A: skipped unreadable {path} ({reason})", SkippedImageWarning,
                          stacklevel=3)
        self.skipped[path] = reason
