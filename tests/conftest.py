"""Suite-wide settings: one intra-op torch thread (small ops; avoids OpenMP spin contention)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
