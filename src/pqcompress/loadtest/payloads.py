"""Request bodies for a load test: real images of a dataset's test split (PNG, as a camera or
a client would send them), one file given by the user, or bodies made from the served
model's input spec (``GET /v1/model``: names, dtypes, shapes, value bounds)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pqcompress.loadtest.errors import LoadTestError

Payload = tuple[bytes, str]  # body, Content-Type
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_PAYLOADS = 10_000
TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".npy": "application/x-npy",
    ".json": "application/json",
}


def file_payload(path: str | Path) -> Payload:
    """One body from a file: its type from the suffix (.png, .jpg, .npy, .json)."""
    p = Path(path)
    ctype = TYPES.get(p.suffix.lower())
    if ctype is None:
        raise LoadTestError(
            f"payload {p}: unknown type '{p.suffix}'; expected one of {', '.join(sorted(TYPES))}"
        )
    if not p.is_file():
        raise LoadTestError(f"payload {p} is not a file")
    size = p.stat().st_size
    if size > MAX_PAYLOAD_BYTES or size == 0:
        raise LoadTestError(f"payload {p} is {size} bytes; expected 1 to {MAX_PAYLOAD_BYTES} bytes")
    return p.read_bytes(), ctype


def dataset_payloads(
    dataset: str, count: int = 256, *, root: str | None = None, seed: int = 0
) -> list[Payload]:
    """``count`` images of the dataset's test split, each as a PNG body (uint8 image data);
    a dataset of non-image samples becomes .npy bodies of one sample each."""
    import numpy as np
    from PIL import Image

    from pqcompress.config import DataConfig
    from pqcompress.data.registry import build_dataset

    if not 1 <= count <= MAX_PAYLOADS:
        raise LoadTestError(f"payload count must be in 1..{MAX_PAYLOADS}, got {count}")
    bundle = build_dataset(dataset, DataConfig(root=root, augment=False), seed=seed)
    test = bundle.test
    x = getattr(test, "x", None)
    if x is None:
        raise LoadTestError(f"dataset {dataset}: its test split holds no sample array")
    total = len(x)
    n = min(count, total)
    picks = np.random.default_rng(seed).choice(total, size=n, replace=False)
    out: list[Payload] = []
    for i in picks:
        sample = x[int(i)].numpy()
        if sample.dtype == np.uint8 and sample.ndim == 3 and sample.shape[0] in (1, 3):
            image = sample[0] if sample.shape[0] == 1 else sample.transpose(1, 2, 0)
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            out.append((buf.getvalue(), "image/png"))
        else:
            xs, _ = test[int(i)]
            arr = xs.numpy()[None]  # token ids stay integers; signals are float32
            arr = arr if arr.dtype.kind in "iu" else arr.astype(np.float32)
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            out.append((buf.getvalue(), "application/x-npy"))
    return out


def spec_payloads(
    url: str,
    count: int = 256,
    *,
    sizes: dict[str, int] | None = None,
    batch: int = 1,
    seed: int = 0,
    ready_timeout_s: float = 30.0,
) -> list[Payload]:
    """``count`` JSON bodies ``{"inputs": {name: [...]}}`` of random inputs that satisfy the
    served model's input spec (read from ``URL/v1/model`` once the service is ready): ids in
    their ``low``/``high`` range, masks of ones, floats N(0, 1); dynamic axes from ``sizes``
    (default 8 each, e.g. ``{"seq": 128}``). A model without named inputs gets one float
    tensor of its ``input_shape``."""
    import json
    import time
    import urllib.error
    import urllib.request

    import numpy as np

    from pqcompress.inputspec import as_specs, from_input_shape, random_arrays

    if not 1 <= count <= MAX_PAYLOADS:
        raise LoadTestError(f"payload count must be in 1..{MAX_PAYLOADS}, got {count}")
    base = url.rstrip("/")
    deadline = time.monotonic() + ready_timeout_s
    info = None
    while info is None:
        try:
            with urllib.request.urlopen(f"{base}/v1/model", timeout=5) as resp:
                info = json.loads(resp.read(1 << 20))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise LoadTestError(
                    f"cannot read the model's input spec from {base}/v1/model ({exc}); is the "
                    "service up and ready?"
                ) from None
            time.sleep(0.5)
    try:
        if info.get("inputs"):
            specs = as_specs(info["inputs"])
        elif info.get("input_shape"):
            specs = (from_input_shape(info["input_shape"]),)
        else:
            raise LoadTestError(f"{base}/v1/model names neither inputs nor an input_shape")
    except LoadTestError:
        raise
    except Exception as exc:  # a spec this version cannot read
        raise LoadTestError(
            f"the model's input spec at {base}/v1/model is unusable: {exc}"
        ) from None
    assert specs is not None
    rng = np.random.default_rng(seed)
    out: list[Payload] = []
    for _ in range(count):
        arrays = random_arrays(specs, rng, sizes, batch=batch)
        if info.get("inputs"):  # named inputs: an object by name
            body: dict[str, Any] = {"inputs": {n: a.tolist() for n, a in arrays.items()}}
        else:  # one float tensor: the plain array
            body = {"inputs": next(iter(arrays.values())).tolist()}
        out.append((json.dumps(body, separators=(",", ":")).encode(), "application/json"))
    return out
