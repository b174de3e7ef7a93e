"""Request payloads to model input: decode PNG/JPEG, resize, channels, normalize; check tensors.

Images follow the model's manifest ``preprocessing`` (what its dataset applied in training):
the image is converted to the model's channels ("L" or "RGB"), resized (bilinear) to ``size``
(H, W) when it differs, scaled to [0, 1] (byte / 255, the same intensity as ``raw /
pixel_scale`` in training) and normalized per channel: ``(v - mean[c]) / std[c]``.
Tensors (JSON or .npy) are taken as the model's input as is (already normalized).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pqcompress.serve.errors import RequestError

IMAGE_TYPES = ("image/png", "image/jpeg")
_PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}
MAX_IMAGE_PIXELS = 4096 * 4096  # decompression-bomb guard before decoding
_MODES = {1: "L", 3: "RGB"}
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes one model input of ``input_shape`` (C, H, W)."""

    input_shape: tuple[int, ...]
    mode: str | None  # PIL mode "L"/"RGB"; None = the model does not take images
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_manifest(
        cls, input_shape: Sequence[int], preprocessing: Mapping[str, Any] | None
    ) -> Preprocessing:
        shape = tuple(int(d) for d in input_shape)
        pre = dict(preprocessing or {})
        images = len(shape) == 3 and shape[0] in _MODES and pre.get("kind", "image") == "image"
        mode = None
        if images:
            mode = {"L": "L", "RGB": "RGB"}.get(str(pre.get("channels", _MODES[shape[0]])))
            if mode is None or len(mode) != shape[0]:
                mode = _MODES[shape[0]]
        channels = shape[0] if shape else 1
        mean = tuple(float(m) for m in pre.get("mean", (0.0,) * channels))
        std = tuple(float(s) for s in pre.get("std", (1.0,) * channels))
        if len(mean) != channels or len(std) != channels or any(not s > 0 for s in std):
            mean, std = (0.0,) * channels, (1.0,) * channels
        return cls(shape, mode, mean, std)

    def image(
        self,
        data: bytes,
        what: str = "body",
        *,
        reserve: Callable[[int, str], None] | None = None,
    ) -> np.ndarray:
        """One decoded, resized, normalized image as a (C, H, W) float32 array.

        ``reserve(bytes, what)`` is called with what decoding will hold (from the header's
        size, before any pixel is decoded), so a memory budget can refuse it first."""
        if self.mode is None:
            raise RequestError(
                415,
                "images_not_supported",
                f"this model takes tensors of shape {list(self.input_shape)}, not images; "
                'send JSON {"inputs": [...]} or an .npy body',
            )
        if not data:
            raise RequestError(400, "empty", f"{what} is empty: send a PNG or JPEG image")
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS))
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise RequestError(
                        413,
                        "image_too_large",
                        f"{what}: {img.width}x{img.height} pixels is over the limit of "
                        f"{MAX_IMAGE_PIXELS} pixels",
                    )
                if reserve is not None:  # decoded pixels (and a converted copy), the floats
                    numel = int(np.prod(self.input_shape))
                    reserve(img.width * img.height * 8 + numel * 12, f"{what}: decoding the image")
                img.load()
        except RequestError:
            raise
        except UnidentifiedImageError:
            if data.startswith(_SIGNATURES):
                raise RequestError(
                    422, "undecodable_image", f"{what}: a PNG/JPEG header, but no decodable image"
                ) from None
            raise RequestError(415, "not_an_image", f"{what} is not a PNG or JPEG image") from None
        except Image.DecompressionBombError:
            raise RequestError(
                413,
                "image_too_large",
                f"{what}: the image declares more pixels than the limit of {MAX_IMAGE_PIXELS}",
            ) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
            raise RequestError(
                422, "undecodable_image", f"{what}: the image cannot be decoded ({exc})"
            ) from None
        _, h, w = self.input_shape
        if img.mode != self.mode:
            img = img.convert(self.mode)
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        mean = np.asarray(self.mean, np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((arr - mean) / std, dtype=np.float32)

    def tensor(self, value: Any, max_batch: int, what: str = "inputs") -> np.ndarray:
        """A batch (N, *input_shape) float32 from a nested list or array; one sample is allowed."""
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, RecursionError) as exc:
            raise RequestError(
                422, "bad_tensor", f"{what} is not a rectangular array of numbers ({exc})"
            ) from None
        if arr.dtype == object or arr.dtype.kind not in "iuf":
            raise RequestError(
                422,
                "bad_tensor",
                f"{what} must hold numbers (got {arr.dtype.name} values); a rectangular "
                f"array of shape [N, {', '.join(map(str, self.input_shape))}] is expected",
            )
        if arr.size == 0:
            raise RequestError(400, "empty", f"{what} is empty: send at least one sample")
        shape = self.input_shape
        if arr.ndim == len(shape):
            arr = arr[None]
        if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
            hint = ""
            if arr.ndim == len(shape) + 1 and len(shape) >= 1 and arr.shape[1] != shape[0]:
                hint = f" (got {arr.shape[1]} channels, the model takes {shape[0]})"
            raise RequestError(
                422,
                "wrong_shape",
                f"{what} has shape {list(arr.shape)}; expected [N, "
                f"{', '.join(map(str, shape))}] or one sample {list(shape)}{hint}",
            )
        check_batch(arr.shape[0], max_batch)
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise RequestError(
                422, "not_finite", f"{what} contains NaN or infinite values (or overflows float32)"
            )
        return np.ascontiguousarray(out)


def check_batch(n: int, max_batch: int) -> None:
    if n > max_batch:
        raise RequestError(
            422, "too_many_inputs", f"{n} inputs in one request; at most {max_batch} are accepted"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
