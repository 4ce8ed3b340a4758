"""lens-widget: watch what every layer of a transformer would predict, through the logit and tuned lenses."""

from .adapter import ModelAdapter, ModelForward
from .errors import AdapterError, LensFileError, LensMismatchError, LensNotFoundError, LensWidgetError
from .grid import LensGrid, compute_grid, next_token_targets, row_labels
from .lens_files import LensConfig
from .lenses import Lens, LogitLens, TunedLens
from .statistics import STATISTICS, UNITS

__version__ = "0.1.0"

__all__ = [
    "STATISTICS",
    "UNITS",
    "AdapterError",
    "Lens",
    "LensConfig",
    "LensFileError",
    "LensGrid",
    "LensMismatchError",
    "LensNotFoundError",
    "LensWidgetError",
    "LogitLens",
    "ModelAdapter",
    "ModelForward",
    "TunedLens",
    "compute_grid",
    "next_token_targets",
    "row_labels",
]
