"""Image trees ``<split>/<class>/*.jpg|png`` in a folder or a tarball, decoded to uint8 arrays."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pqcompress.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_PATTERN = "<class>/*.jpg|png"
_FORMATS = ("JPEG", "PNG", "BMP")


@dataclass(frozen=True)
class ImageEntry:
    """One image: its split, class index, and name (a file path or a tar member name)."""

    split: str
    label: int
    name: str
    data: bytes | None = None  # the encoded bytes for tar members; None: read the file ``name``


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def class_index(found: Sequence[str], classes: Sequence[str], where: str) -> dict[str, int]:
    """Map folder names to class indices (case-insensitive); DataError when the sets differ."""
    wanted = {c.lower(): i for i, c in enumerate(classes)}
    missing = sorted(set(wanted) - {f.lower() for f in found})
    unexpected = sorted(f for f in found if f.lower() not in wanted)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing class folders {missing}")
        if unexpected:
            parts.append(f"unexpected folders {unexpected}")
        raise DataError(f"{where}: {'; '.join(parts)}; expected exactly: {', '.join(classes)}")
    return {f: wanted[f.lower()] for f in found}


def list_image_folder(
    root: Path,
    splits: Sequence[str],
    classes: Sequence[str],
    *,
    optional: Sequence[str] = (),
) -> tuple[list[ImageEntry], str]:
    """Entries of ``root/<split>/<class>/*`` sorted by (split, class, name), and a fingerprint
    of every file's name, size and mtime (changes whenever an image is added, removed or edited).
    Splits in ``optional`` may be absent; any other layout problem raises DataError."""
    entries: list[ImageEntry] = []
    digest = hashlib.sha256()
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            if split in optional:
                continue
            raise DataError(f"{split_dir} does not exist; expected {root}/{split}/{_PATTERN}")
        folders = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
        if not folders:
            raise DataError(
                f"no class folders under {split_dir}; expected {split}/{_PATTERN} "
                f"with classes {', '.join(classes)}"
            )
        index = class_index(folders, classes, str(split_dir))
        for folder in sorted(folders, key=lambda f: index[f]):
            files = sorted(
                (e for e in os.scandir(split_dir / folder) if e.is_file() and is_image(e.name)),
                key=lambda e: e.name,
            )
            if not files:
                raise DataError(f"no images (*.jpg, *.png) in {split_dir / folder}")
            for e in files:
                st = e.stat()
                digest.update(f"{split}/{folder}/{e.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
                entries.append(ImageEntry(split, index[folder], e.path))
    return entries, digest.hexdigest()[:24]


def iter_tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of every regular file in a (gzipped) tarball, streamed in order."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"cannot read tarball {path}: {exc} (corrupt or truncated?)") from None


def image_entries(
    members: Sequence[tuple[str, bytes]],
    splits: Sequence[str],
    classes: Sequence[str],
    where: str,
    *,
    optional: Sequence[str] = (),
) -> list[ImageEntry]:
    """Entries from tar members named ``.../<split>/<class>/<file>.jpg|png``, sorted."""
    found: dict[str, dict[str, list[tuple[str, bytes]]]] = {s: {} for s in splits}
    for name, data in members:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] in found and is_image(parts[-1]):
            found[parts[-3]].setdefault(parts[-2], []).append((name, data))
    entries: list[ImageEntry] = []
    for split in splits:
        if not found[split]:
            if split in optional:
                continue
            raise DataError(f"{where} has no {split}/{_PATTERN} members")
        index = class_index(sorted(found[split]), classes, f"{where} ({split}/)")
        for folder in sorted(found[split], key=lambda f: index[f]):
            for name, data in sorted(found[split][folder]):
                entries.append(ImageEntry(split, index[folder], name, data))
    return entries


def decode_images(
    entries: Sequence[ImageEntry], *, size: tuple[int, int], mode: str, workers: int | None = None
) -> np.ndarray:
    """Decode ``entries`` to uint8 (N, C, H, W), converted to ``mode`` ("RGB" or "L") and
    resized to ``size`` (H, W) where needed. Files on disk (often large, e.g. X-rays) decode on
    a thread pool; small in-memory images decode faster on one thread (Pillow's header parsing
    holds the GIL)."""
    h, w = size
    channels = len(mode)
    out = np.empty((len(entries), h, w, channels), dtype=np.uint8)
    if workers is None:
        from_files = any(e.data is None for e in entries)
        workers = min(4, os.cpu_count() or 1) if from_files else 1
    chunk = max(1, -(-len(entries) // (workers * 8)))

    def work(start: int) -> None:
        for i in range(start, min(start + chunk, len(entries))):
            out[i] = _decode_one(entries[i], h, w, mode).reshape(h, w, channels)

    starts = range(0, len(entries), chunk)
    if workers == 1:
        for start in starts:
            work(start)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, starts))
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _decode_one(entry: ImageEntry, h: int, w: int, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        source = io.BytesIO(entry.data) if entry.data is not None else entry.name
        with Image.open(source, formats=_FORMATS) as im:
            if im.size != (w, h) and im.format == "JPEG":
                im.draft(mode, (w, h))  # decode large JPEGs at a reduced scale (fast)
            im.load()
            if im.mode != mode:
                im = im.convert(mode)
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            return np.frombuffer(im.tobytes(), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {entry.name}: {exc}") from None
