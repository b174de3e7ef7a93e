"""CIFAR-10 (3x32x32, 10 classes) from python batches, an image tree or a tarball; cached as uint8."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from pqcompress.config import DataConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.assemble import assemble_bundle
from pqcompress.data.augment import CropFlip
from pqcompress.data.bundle import DataBundle
from pqcompress.data.cache import cache_root, fingerprint, load_cached, save_cached
from pqcompress.data.cifar_batches import BATCH_NAME, batch_files, read_batches
from pqcompress.data.download import download
from pqcompress.data.image_folder import (
    ImageEntry,
    decode_images,
    image_entries,
    iter_tar_files,
    list_image_folder,
)
from pqcompress.data.normalize import Normalization
from pqcompress.data.options import resolve_options
from pqcompress.data.registry import register_dataset
from pqcompress.data.sources import describe, search_roots
from pqcompress.errors import DataError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
PYTHON_TARBALL = "cifar-10-python.tar.gz"
JPEG_TARBALL = "cifar10-jpeg.tar.gz"
LAYOUTS = (
    "a python batches folder (data_batch_1..5, test_batch, e.g. cifar-10-batches-py/), "
    "an image tree train/<class>/*.jpg + test/<class>/*.jpg, "
    f"{PYTHON_TARBALL} or {JPEG_TARBALL}"
)
_SPLITS = ("train", "test")
_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class CifarSource:
    """Where CIFAR-10 was found: a python batches folder, an image tree, or a tarball."""

    kind: Literal["batches", "folder", "tarball"]
    path: Path


def find_source(root: str | None = None, *, allow_download: bool = True) -> CifarSource:
    """Locate CIFAR-10 (see ``sources.search_roots``); download the official tarball into the
    cache as a last resort. An explicit ``root`` is the only place looked at."""
    roots = search_roots(root)
    if root is not None and not roots[0].exists():
        raise DataError(f"data.root {roots[0]} does not exist; expected {LAYOUTS}")
    for place in roots:
        found = _source_in(place, explicit=root is not None)
        if found is not None:
            return found
    if root is not None:
        raise DataError(f"no CIFAR-10 data in {roots[0]}; expected {LAYOUTS}")
    downloaded = cache_root() / "downloads" / PYTHON_TARBALL
    if downloaded.is_file():
        return CifarSource("tarball", downloaded)
    where = f"CIFAR-10 not found in {describe(roots)}; expected {LAYOUTS}"
    if not allow_download:
        raise DataError(f"{where} (downloading is off: data.options.download=false)")
    try:
        return CifarSource("tarball", download(CIFAR10_URL, downloaded, CIFAR10_MD5))
    except DataError as exc:
        raise DataError(f"{where}; {exc}") from None


def _source_in(place: Path, *, explicit: bool) -> CifarSource | None:
    if place.is_file():
        return CifarSource("tarball", place) if explicit else None
    if not place.is_dir():
        return None
    # an explicit root may itself be the batches folder or the image tree
    folders = [place] if explicit else []
    for folder in [*folders, place / "cifar-10-batches-py"]:
        if folder.is_dir() and any(BATCH_NAME.match(p.name) for p in folder.iterdir()):
            return CifarSource("batches", folder)
    if (place / PYTHON_TARBALL).is_file():
        return CifarSource("tarball", place / PYTHON_TARBALL)
    for folder in [*folders, place / "cifar10-jpeg", place / "cifar10"]:
        if (folder / "train").is_dir():
            return CifarSource("folder", folder)
    if (place / JPEG_TARBALL).is_file():
        return CifarSource("tarball", place / JPEG_TARBALL)
    return None


def load_arrays(source: CifarSource) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``{x_train, y_train, x_test, y_test}`` (uint8 N,3,32,32 / int64) and metadata, from the
    cache when the source is unchanged, else decoded and cached."""
    entries = None
    if source.kind == "folder":
        entries, digest = list_image_folder(source.path, _SPLITS, CIFAR10_CLASSES)
        key = fingerprint([], source.path.resolve(), digest)
    elif source.kind == "batches":
        key = fingerprint(batch_files(source.path))
    else:
        key = fingerprint([source.path])
    cached = load_cached("cifar10", key)
    if cached is not None and _valid(cached[0]):
        return cached
    if source.kind == "folder":
        assert entries is not None
        arrays = _from_entries(entries)
        lossy = any(e.name.lower().endswith((".jpg", ".jpeg")) for e in entries)
    elif source.kind == "batches":
        blobs = {p.name: p.read_bytes() for p in batch_files(source.path)}
        arrays, lossy = read_batches(blobs, str(source.path)), False
    else:
        arrays, lossy = _from_tarball(source.path)
    norm = Normalization.fit(torch.from_numpy(arrays["x_train"]))
    meta = {
        "source": str(source.path.resolve()),
        "kind": source.kind,
        "lossy": lossy,
        **norm.to_dict(),
    }
    save_cached("cifar10", key, arrays, meta)
    return arrays, meta


def _from_entries(entries: list[ImageEntry]) -> dict[str, np.ndarray]:
    x = decode_images(entries, size=_SHAPE[1:], mode="RGB")
    y = np.array([e.label for e in entries], dtype=np.int64)
    is_train = np.array([e.split == "train" for e in entries])
    return {
        "x_train": x[is_train],
        "y_train": y[is_train],
        "x_test": x[~is_train],
        "y_test": y[~is_train],
    }


def _from_tarball(path: Path) -> tuple[dict[str, np.ndarray], bool]:
    members = list(iter_tar_files(path))
    blobs = {n.rsplit("/", 1)[-1]: b for n, b in members if BATCH_NAME.match(n.rsplit("/", 1)[-1])}
    if blobs:
        return read_batches(blobs, str(path)), False
    if not any(re.search(r"(^|/)(train|test)/[^/]+/[^/]+$", n) for n, _ in members):
        raise DataError(
            f"{path} contains neither cifar-10-batches-py/data_batch_* nor "
            f"<prefix>/{{train,test}}/<class>/*.jpg members; expected {LAYOUTS}"
        )
    entries = image_entries(members, _SPLITS, CIFAR10_CLASSES, str(path))
    return _from_entries(entries), True


def _valid(arrays: dict[str, np.ndarray]) -> bool:
    try:
        return all(
            arrays[f"x_{s}"].dtype == np.uint8
            and arrays[f"x_{s}"].shape[1:] == _SHAPE
            and arrays[f"y_{s}"].shape == (arrays[f"x_{s}"].shape[0],)
            for s in _SPLITS
        )
    except KeyError:
        return False


@register_dataset("cifar10")
def build_cifar10(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """CIFAR-10: 50k train (minus the validation carve-out) / 10k test, crop(pad 4) + flip."""
    opts = resolve_options("cifar10", cfg.options, {"download": True})
    source = find_source(cfg.root, allow_download=bool(opts["download"]))
    arrays, meta = load_arrays(source)
    norm = Normalization.from_dict(meta)

    def split(name: str) -> ArrayDataset:
        x, y = torch.from_numpy(arrays[f"x_{name}"]), torch.from_numpy(arrays[f"y_{name}"])
        return ArrayDataset(x, y, normalization=norm)

    label = "CIFAR-10 (JPEG copy)" if meta.get("lossy") else "CIFAR-10"
    return assemble_bundle(
        "cifar10",
        cfg,
        seed,
        train=split("train"),
        test=split("test"),
        class_names=list(CIFAR10_CLASSES),
        augment=CropFlip(pad=4, flip=True),
        preprocessing={"size": [32, 32], "channels": "RGB", "layout": "CHW"},
        source=f"{label} from {meta['source']}",
    )
