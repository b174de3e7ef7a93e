"""The ``pq`` space (beyond the study): alpha and bits per layer group, with a short P->Q
fine-tuning of the trained model per evaluation. Not built yet: the spec says so clearly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pqcompress.errors import ConfigError


def pq_space(options: Mapping[str, Any]) -> Any:
    raise ConfigError(
        "space: pq (alpha/bits per layer group with P->Q fine-tuning per evaluation) is not "
        "available yet; use space: posttrain or a mapping of PostTrainConfig fields"
    )


class PQEvaluator:  # pragma: no cover - unreachable until pq_space exists
    def __init__(self, settings: Any) -> None:
        pq_space({})
