"""Exceptions with messages a researcher can act on, shared by every module."""

from __future__ import annotations


class LensWidgetError(Exception):
    """Base class, so callers can catch everything this package raises on bad input."""


class AdapterError(LensWidgetError):
    """The model's final norm, unembedding or hidden-state layout could not be found or verified."""


class LensFileError(LensWidgetError):
    """A lens folder is missing, corrupt, truncated or not plain tensors."""


class LensMismatchError(LensWidgetError):
    """A lens was trained for a model of another shape than the one it is applied to."""


class LensNotFoundError(LensWidgetError):
    """No lens could be resolved locally or from the Hub."""


class InvalidLensError(LensWidgetError, ValueError):
    """A lens whose parameters hold NaN or infinite values: every cell it decoded would be invalid."""


class ModelNotLoadedError(LensWidgetError, ValueError):
    """The model's parameters are on the meta device, with nothing to load them when it runs."""


class LensDeviceError(LensWidgetError, ValueError):
    """A lens given to a low-level call sits on another device than the work it is used in."""
