"""Imported once by the local executor's fork server: torch, training, codec and numba, warm."""

from __future__ import annotations

import contextlib

import torch
import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: ~2 s)

import pqcompress.codec.run_export
import pqcompress.train.trainer  # noqa: F401
from pqcompress.sweep import worker  # noqa: F401

with contextlib.suppress(Exception):  # numba's one-time target set-up (~0.5 s); starts no thread
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()
