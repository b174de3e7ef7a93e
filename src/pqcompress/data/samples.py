"""One test image of a dataset written as the PNG a client would send: the inverse of the
dataset's normalization (the service applies it again from the model's manifest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pqcompress.atomic import atomic_write
from pqcompress.config import DataConfig
from pqcompress.errors import ConfigError


def write_example_image(
    path: str | Path, dataset: str = "digits", *, index: int = 0, root: str | None = None
) -> str:
    """Write test image ``index`` of ``dataset`` to ``path`` (PNG) and return its class name.

    Pixels are ``(x * std + mean) * 255``, clipped to bytes: what the service turns back into
    ``x`` with the manifest's preprocessing (``byte / 255``, then ``(v - mean) / std``), up to
    rounding to whole bytes. ConfigError for a dataset without image input or a bad index."""
    import io

    from PIL import Image

    from pqcompress.data.registry import build_dataset

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"-o {path}: an example image is written as PNG; name it *.png")
    bundle = build_dataset(dataset, DataConfig(root=root, augment=False, val_fraction=0.0))
    pre = dict(bundle.preprocessing or {})
    shape = tuple(bundle.input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or pre.get("kind", "image") != "image":
        raise ConfigError(f"dataset '{dataset}' does not take images (input shape {list(shape)})")
    if not 0 <= index < len(bundle.test):
        raise ConfigError(f"--index {index}: the test split has {len(bundle.test)} images")
    x, y = bundle.test[index]
    arr = np.asarray(x, dtype=np.float64)
    mean = np.asarray(pre.get("mean", [0.0] * shape[0]), dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(pre.get("std", [1.0] * shape[0]), dtype=np.float64).reshape(-1, 1, 1)
    pixels = np.clip(np.rint((arr * std + mean) * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if shape[0] == 1 else pixels.transpose(1, 2, 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    return str(bundle.class_names[int(y)])
