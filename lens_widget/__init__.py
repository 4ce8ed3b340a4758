"""lens-widget: watch what every layer of a transformer would predict, through the logit and tuned lenses.

The engine (LensSession and what it builds on) needs torch and transformers only. The widget and the
tuned-lens drop-ins (LensWidget, plot_lens, compare_models) need anywidget, traitlets and ipywidgets,
so they are imported when first used (module `__getattr__`): `import lens_widget` and
`import lens_widget.session` work in a plain Python process or a server without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .adapter import ModelAdapter, ModelForward
from .bundled import DEMO_TEXT, demo, demo_report, load_demo
from .errors import (
    AdapterError,
    InvalidLensError,
    LensDeviceError,
    LensFileError,
    LensMismatchError,
    LensNotFoundError,
    LensWidgetError,
    ModelNotLoadedError,
)
from .grid import LensGrid, PairGrid, compute_grid, compute_pair_grid, next_token_targets, row_labels
from .lens_files import LensConfig
from .lenses import Lens, LogitLens, TunedLens
from .payload import PayloadError, apply_update, decode_update
from .session import LensSession
from .statistics import DIFF_STATISTICS, STATISTIC_INFO, STATISTICS, UNITS, pair_statistics
from .training import TrainingError, train_lens
from .update import Update

if TYPE_CHECKING:
    from .compat import compare_models, plot_lens
    from .widget import LensWidget

__version__ = "0.1.0"

_LAZY = {"LensWidget": "widget", "plot_lens": "compat", "compare_models": "compat"}
"""Names whose modules import the Jupyter widget stack, by the module that defines them."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(import_module(f".{module}", __name__), name)
    except ImportError as exc:
        raise ImportError(
            f"lens_widget.{name} needs the Jupyter widget packages ({exc}); install them with "
            "`pip install anywidget ipywidgets traitlets`. LensSession works without them."
        ) from exc
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEMO_TEXT",
    "DIFF_STATISTICS",
    "STATISTICS",
    "STATISTIC_INFO",
    "UNITS",
    "AdapterError",
    "InvalidLensError",
    "Lens",
    "LensConfig",
    "LensDeviceError",
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
    "ModelNotLoadedError",
    "PairGrid",
    "PayloadError",
    "TrainingError",
    "TunedLens",
    "Update",
    "apply_update",
    "compare_models",
    "compute_grid",
    "compute_pair_grid",
    "decode_update",
    "demo",
    "demo_report",
    "load_demo",
    "next_token_targets",
    "pair_statistics",
    "plot_lens",
    "row_labels",
    "train_lens",
]
