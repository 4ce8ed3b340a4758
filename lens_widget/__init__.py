"""lens-widget: watch what every layer of a transformer would predict, through the logit and tuned lenses."""

from .adapter import ModelAdapter, ModelForward
from .errors import (
    AdapterError,
    InvalidLensError,
    LensFileError,
    LensMismatchError,
    LensNotFoundError,
    LensWidgetError,
)
from .grid import LensGrid, compute_grid, next_token_targets, row_labels
from .lens_files import LensConfig
from .lenses import Lens, LogitLens, TunedLens
from .payload import PayloadError, apply_update, decode_update
from .session import LensSession, Update
from .statistics import STATISTICS, UNITS
from .widget import LensWidget

__version__ = "0.1.0"

__all__ = [
    "STATISTICS",
    "UNITS",
    "AdapterError",
    "InvalidLensError",
    "Lens",
    "LensConfig",
    "LensFileError",
    "LensGrid",
    "LensMismatchError",
    "LensNotFoundError",
    "LensSession",
    "LensWidget",
    "LensWidgetError",
    "LogitLens",
    "ModelAdapter",
    "ModelForward",
    "PayloadError",
    "TunedLens",
    "Update",
    "apply_update",
    "compute_grid",
    "decode_update",
    "next_token_targets",
    "row_labels",
]
