"""Checkpoint files: plain tensors and containers, saved atomically, loaded with weights_only=True.

Ground floor (beside ``atomic``), so that the codec can read a run without the trainer."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import IO, Any

import torch

from pqcompress.atomic import atomic_write
from pqcompress.errors import CheckpointError

FORMAT = "pqcompress-checkpoint"
FORMAT_VERSION = 1
RUN_CONFIG = "config.yaml"  # the experiment config beside a run's checkpoints


DIGEST_KEY = "digest"  # BLAKE2b of every value in the checkpoint (torch does not check its zip CRC)


def state_digest(state: Any) -> str:
    """A digest of a checkpoint's contents: every tensor's dtype, shape and bytes and every plain
    value, walked in a fixed order (mapping keys sorted), so one flipped bit changes it."""
    h = hashlib.blake2b(digest_size=32)

    def walk(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(value.shape)}".encode())
            if t.numel():
                h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(b"D%d" % len(value))
            for key in sorted(value, key=repr):
                h.update(repr(key).encode())
                walk(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(b"L%d" % len(value))
            for item in value:
                walk(item)
        else:
            h.update(repr(value).encode())

    walk(state)
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` plus the format tag, version and a digest of the contents."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    payload[DIGEST_KEY] = state_digest(payload)

    def write(fh: IO[bytes]) -> None:
        try:
            torch.save(payload, fh)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (ENOSPC) so
            raise OSError(errno.EIO, f"torch.save failed ({exc})") from None

    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU; CheckpointError if unusable."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' is not a regular file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, foreign pickle, truncated zip ...
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 200 else detail[:200] + " ..."
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {detail}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a pqcompress checkpoint")
    digest = data.pop(DIGEST_KEY, None)
    if digest is not None and digest != state_digest(data):
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt: its contents do not match the digest written with "
            "them (a changed or damaged file); it is not used"
        )
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {version}; this pqcompress reads "
            f"version {FORMAT_VERSION}"
        )
    return data


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict stored in a checkpoint.pt or best.pt (``model.load_state_dict(...)``)."""
    state: dict[str, torch.Tensor] = load_checkpoint(path)["model"]
    return state


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The experiment config a run directory records in ``config.yaml`` (None when absent)."""
    from pqcompress.errors import ConfigError
    from pqcompress.yamlio import read_yaml_file

    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        data = read_yaml_file(path, "run config")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    return data if isinstance(data, dict) else None


def split_seed_of(source: str | Path | None, dataset: str) -> int | None:
    """The split seed of the run that trained ``source`` (a run directory, or a checkpoint or
    file inside one) on ``dataset``: its ``data.split_seed``, else its ``train.seed``. None
    when ``source`` is not such a run (no ``config.yaml`` beside it, another dataset).

    A model fine-tuned, searched or evaluated on validation data must use the split its base
    was trained with: another seed carves another validation set out of the training images,
    and the base has seen part of it (the selection would then favour memorised images)."""
    if source is None:
        return None
    path = Path(source)
    run_dir = path if path.is_dir() else path.parent
    config = read_run_config(run_dir)
    if not config or config.get("dataset") != dataset:
        return None
    data, train = config.get("data") or {}, config.get("train") or {}
    seed = data.get("split_seed")
    if seed is None:
        seed = train.get("seed", 0)
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None
