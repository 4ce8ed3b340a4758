"""The model's post-processing of its head output (scaling, soft-capping), taken from its config.

Its own module because it runs in two places: in the adapter here, and inside an nnsight trace on
NDIF's servers, where only what is shipped by value exists (see trace_cells.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

LOGIT_ATTRS = ("logit_scale", "logits_scaling", "final_logit_softcapping")
"""Config attributes through which transformers models post-process their head's output. Checked
against the model's real logits at discovery, so a new kind of post-processing fails loudly."""


@dataclass(frozen=True)
class LogitTransform:
    """The model's post-processing of its head output, taken from its config."""

    scale: float | None = None
    divisor: float | None = None
    softcap: float | None = None

    @classmethod
    def from_config(cls, config: Any) -> LogitTransform:
        values = {name: getattr(config, name, None) for name in LOGIT_ATTRS}
        return cls(
            scale=_positive_or_none(values["logit_scale"]),
            divisor=_positive_or_none(values["logits_scaling"]),
            softcap=_positive_or_none(values["final_logit_softcapping"]),
        )

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale is not None and self.scale != 1.0:
            logits = logits * self.scale
        if self.divisor is not None and self.divisor != 1.0:
            logits = logits / self.divisor
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def apply_(self, logits: torch.Tensor) -> torch.Tensor:
        """The same, in place (the same operations, so the same numbers)."""
        if self.scale is not None and self.scale != 1.0:
            logits.mul_(self.scale)
        if self.divisor is not None and self.divisor != 1.0:
            logits.div_(self.divisor)
        if self.softcap is not None:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits


def _positive_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None
