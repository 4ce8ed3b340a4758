"""Connects a LensWidget's traits to its LensSession.

Computation runs in the trait observers, on the kernel's main thread (Colab drops widget updates
sent from other threads). Every failure becomes a readable `error` trait; the session rolls itself
back, so the next edit recovers, and the text the user typed is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .lenses import TunedLens
from .session import LensSession, Update

if TYPE_CHECKING:
    from .widget import LensWidget


class WidgetController:
    def __init__(self, widget: LensWidget, session: LensSession, tuned: TunedLens | None) -> None:
        self.widget = widget
        self.session = session
        self.tuned = tuned
        self.seq = 0
        self._handled: tuple[str, int] | None = None
        widget.observe(self._on_edit, names=["text", "text_revision"])
        widget.observe(self._on_stride, names="layer_stride")
        widget.observe(self._on_lens, names="lens")
        widget.on_msg(self._on_message)

    def publish(self, update: Update) -> None:
        """Send an update; deltas name the update they apply to, so a view that missed one asks again."""
        self.seq += 1
        header = {
            **update.payload["header"],
            "seq": self.seq,
            "base": -1 if update.kind == "full" else self.seq - 1,
            "text_revision": self.widget.text_revision,
        }
        self.widget.update = {**update.payload, "header": header}

    def publish_full(self) -> None:
        self.publish(self.session.full_update())

    def _on_edit(self, change: Any) -> None:
        w = self.widget
        # ipywidgets locks the properties a view sent while their observers run.
        from_view = bool({"text", "text_revision"} & set(w._property_lock))
        if from_view and w.text_revision <= w.done_revision:
            # A stale edit (older than one already handled): keep the newer text.
            if self._handled is not None and (w.text, w.text_revision) != self._handled:
                w.text, w.text_revision = self._handled
            return
        if not from_view and change["name"] == "text" and w.text_revision <= w.done_revision:
            # Set from Python: give it a new revision (handled when that change arrives here), so views
            # adopt it unless their user has typed past it.
            w.text_revision = max(w.text_revision, w.done_revision) + 1
            return
        key = (w.text, w.text_revision)
        if key == self._handled:
            return
        self._handled = key
        with w.hold_sync():  # the update and done_revision reach the view in one message
            self._run("Could not analyse the text", lambda: self.session.set_text(w.text))
            w.done_revision = max(w.done_revision, key[1])

    def _on_stride(self, change: Any) -> None:
        self._run("Could not change the layer stride", lambda: self.session.set_layer_stride(change["new"]))

    def _on_lens(self, change: Any) -> None:
        lens = self.tuned if change["new"] == "tuned" else None
        self._run("Could not switch the lens", lambda: self.session.set_lens(lens))

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "request_full":
            self._run("Could not send the grid", self.session.full_update)

    def _run(self, what: str, step: Any) -> None:
        """Publish what `step` returns; any failure becomes the `error` trait, so the kernel, the
        session (which rolls itself back) and the view all stay usable."""
        with self.widget.hold_sync():
            try:
                self.publish(step())
                self.widget.error = ""
            except Exception as exc:
                self.widget.error = _message(what, exc)


def _message(what: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{what}: {type(exc).__name__}: {text}"
