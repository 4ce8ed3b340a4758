"""LensWidget: the anywidget that shows a LensSession live in a notebook.

The class holds traits only; `controller.py` connects them to the session. Traits mirror the
TypeScript `Model` in js/widget.ts one to one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets
from torch import nn

from .controller import WidgetController
from .lenses import Lens, TunedLens
from .session import LensSession
from .statistics import STATISTICS
from .text import without_lone_surrogates

_STATIC = Path(__file__).parent / "static"


class LensWidget(anywidget.AnyWidget):
    """Type text; watch what every layer would predict, through the logit or tuned lens."""

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    text = traitlets.Unicode("").tag(sync=True)
    """The text being analysed; views send typing as edit messages and show this (controller.py)."""
    statistic = traitlets.Enum(STATISTICS, default_value="entropy").tag(sync=True)
    """The statistic that colours the cells (all are in the payload; switching is instant)."""
    layer_stride = traitlets.Int(1).tag(sync=True)
    """Show every n-th layer; the output row always stays."""
    lens = traitlets.Enum(("logit", "tuned"), default_value="logit").tag(sync=True)
    """The lens in use."""
    lens_options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Lenses the user can switch between ("tuned" only when a tuned lens was given)."""
    update = traitlets.Dict().tag(sync=True)
    """The newest payload (lens_widget/payload.py), plus seq and base in its header."""
    vocabulary = traitlets.Dict().tag(sync=True)
    """Every token id's text, sent once (payload.encode_vocabulary)."""
    error = traitlets.Unicode("").tag(sync=True)
    """A readable message about the last failure, or empty."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lens: Lens | None = None,
        *,
        text: str = "",
        statistic: str = "entropy",
        layer_stride: int = 1,
        top_k: int = 10,
        max_tokens: int | None = None,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        session = LensSession(
            model, tokenizer, lens, top_k=top_k, layer_stride=layer_stride, device=device, max_tokens=max_tokens
        )
        tuned = lens if isinstance(lens, TunedLens) else None
        super().__init__(
            statistic=statistic,
            layer_stride=layer_stride,
            lens="tuned" if tuned is not None else "logit",
            lens_options=["tuned", "logit"] if tuned is not None else ["logit"],
            vocabulary=session.vocabulary(),
            **kwargs,
        )
        self._controller = WidgetController(self, session, tuned)
        self.text = text
        if not text:
            self._controller.publish_full()

    @traitlets.validate("text")
    def _encodable_text(self, proposal: Any) -> str:
        """A lone surrogate cannot be encoded in a message to the views (it would break the widget)."""
        return without_lone_surrogates(proposal["value"])

    @traitlets.validate("layer_stride")
    def _check_stride(self, proposal: Any) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise traitlets.TraitError(f"layer_stride must be a positive integer, got {value!r}")
        return int(value)

    @traitlets.validate("lens")
    def _check_lens(self, proposal: Any) -> str:
        if proposal["value"] not in self.lens_options:
            options = self.lens_options
            raise traitlets.TraitError(f"lens {proposal['value']!r} is not available here; options: {options}")
        return str(proposal["value"])

    @property
    def session(self) -> LensSession:
        """The engine behind the view (for inspection; change the widget through its traits)."""
        return self._controller.session
