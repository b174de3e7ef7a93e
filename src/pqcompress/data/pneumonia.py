"""PneumoniaMNIST chest X-rays (1xSxS, normal/pneumonia) from the MedMNIST npz or an image tree."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pqcompress.config import DataConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.assemble import assemble_bundle
from pqcompress.data.augment import CropFlip
from pqcompress.data.bundle import DataBundle
from pqcompress.data.cache import fingerprint, load_cached, save_cached
from pqcompress.data.image_folder import decode_images, list_image_folder
from pqcompress.data.normalize import Normalization
from pqcompress.data.options import positive_int, resolve_options
from pqcompress.data.registry import register_dataset
from pqcompress.data.sources import describe, search_roots
from pqcompress.errors import DataError

PNEUMONIA_CLASSES = ("normal", "pneumonia")
NPZ_NAME = "pneumoniamnist.npz"
NPZ_KEYS = (
    "train_images",
    "train_labels",
    "val_images",
    "val_labels",
    "test_images",
    "test_labels",
)
_SPLITS = ("train", "val", "test")
_FOLDER_CLASSES = ("NORMAL", "PNEUMONIA")  # matched case-insensitively
LAYOUTS = (
    f"{NPZ_NAME} (MedMNIST: {', '.join(NPZ_KEYS)}) or an image tree "
    "train/{NORMAL,PNEUMONIA}/*.jpeg + test/... (+ optional val/...), e.g. chest_xray/"
)
GET_IT = "get pneumoniamnist.npz from MedMNIST (https://zenodo.org/records/10519652)"


def find_source(root: str | None = None) -> Path:
    """The npz file or the image-tree folder holding PneumoniaMNIST; DataError if none."""
    roots = search_roots(root)
    explicit = root is not None
    if explicit and not roots[0].exists():
        raise DataError(f"data.root {roots[0]} does not exist; expected {LAYOUTS}")
    for place in roots:
        if place.is_file() and explicit:
            return place
        if not place.is_dir():
            continue
        if (place / NPZ_NAME).is_file():
            return place / NPZ_NAME
        for folder in ([place] if explicit else []) + [place / "chest_xray"]:
            if (folder / "train").is_dir():
                return folder
    if explicit:
        raise DataError(f"no PneumoniaMNIST data in {roots[0]}; expected {LAYOUTS}")
    raise DataError(f"PneumoniaMNIST not found in {describe(roots)}; expected {LAYOUTS}; {GET_IT}")


def load_npz(path: Path, size: int | None = None) -> dict[str, np.ndarray]:
    """``{x_train, y_train, x_val, y_val, x_test, y_test}``: uint8 (N, 1, H, W) and int64 (N,)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path} is missing keys {missing}; expected {', '.join(NPZ_KEYS)}")
            raw = {k: npz[k] for k in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path} as an .npz archive: {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    for split in _SPLITS:
        images, labels = raw[f"{split}_images"], raw[f"{split}_labels"]
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{path}: {split}_images must be uint8 (N, H, W), got {images.dtype} {images.shape}"
            )
        y = labels.reshape(-1).astype(np.int64)
        if y.shape[0] != images.shape[0] or (y.size and not np.isin(y, (0, 1)).all()):
            raise DataError(
                f"{path}: {split}_labels must hold one label 0/1 per image "
                f"({images.shape[0]} images, labels shape {labels.shape})"
            )
        if size is not None and images.shape[1:] != (size, size):
            images = _resize(images, size)
        arrays[f"x_{split}"] = np.ascontiguousarray(images[:, None])
        arrays[f"y_{split}"] = y
    return arrays


def load_folder(folder: Path, size: int) -> dict[str, np.ndarray]:
    """Decode ``{train,val,test}/{NORMAL,PNEUMONIA}/*`` to grayscale ``size`` x ``size`` (cached)."""
    entries, digest = list_image_folder(folder, _SPLITS, _FOLDER_CLASSES, optional=("val",))
    key = fingerprint([], folder.resolve(), digest, size)
    cached = load_cached("pneumonia", key)
    if cached is not None:
        return cached[0]
    x = decode_images(entries, size=(size, size), mode="L")
    y = np.array([e.label for e in entries], dtype=np.int64)
    split = np.array([e.split for e in entries])
    arrays = {}
    for name in _SPLITS:
        if (split == name).any():
            arrays[f"x_{name}"], arrays[f"y_{name}"] = x[split == name], y[split == name]
    save_cached("pneumonia", key, arrays, {"source": str(folder.resolve()), "size": size})
    return arrays


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = [
        np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
        for im in images
    ]
    return np.stack(out).astype(np.uint8)


@register_dataset("pneumonia")
def build_pneumonia(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """PneumoniaMNIST with its own train/val/test split; augmentation = crop(pad 2) + flip."""
    opts: dict[str, Any] = resolve_options("pneumonia", cfg.options, {"size": 28})
    size = positive_int("pneumonia", "size", opts["size"])
    source = find_source(cfg.root)
    if source.is_dir():
        arrays = load_folder(source, size)
    else:
        arrays = load_npz(source, size)
    x_train = torch.from_numpy(arrays["x_train"])
    norm = Normalization.fit(x_train)

    def split(name: str) -> ArrayDataset | None:
        if f"x_{name}" not in arrays:
            return None
        x, y = torch.from_numpy(arrays[f"x_{name}"]), torch.from_numpy(arrays[f"y_{name}"])
        return ArrayDataset(x, y, normalization=norm)

    train, test = split("train"), split("test")
    assert train is not None and test is not None
    h, w = train.sample_shape[1:]
    return assemble_bundle(
        "pneumonia",
        cfg,
        seed,
        train=train,
        val=split("val"),
        test=test,
        class_names=list(PNEUMONIA_CLASSES),
        augment=CropFlip(pad=2, flip=True),
        preprocessing={"size": [h, w], "channels": "L", "layout": "CHW"},
        source=f"PneumoniaMNIST from {source.resolve()}",
    )
