"""Connects a LensWidget's traits and messages to its LensSession.

The edit protocol has two directions, never mixed (js/sync.ts is the view's half):
- A view's typing arrives as a message, {"type": "edit", "view", "edit", "text"}. The kernel makes
  that text its own (`widget.text = text`, which recomputes) and answers
  {"type": "edit_done", "view", "edit"}, whether the analysis succeeded or not. Comm messages are
  handled one at a time, in order, so the newest edit is always the last one handled.
- The `text` trait flows from the kernel to every view. Setting it from Python recomputes; a view
  shows it unless its user has typing the kernel has not finished with.

The picture has two channels too:
- The `snapshot` trait always holds the whole current picture (a full payload): it is what a saved
  notebook, nbviewer, nbconvert or an embedded page replays with no kernel, so it must never be a
  delta. Every change that does not come from typing (text set from Python, stride, lens, a view
  asking for the whole state) refreshes it at once.
- Typing is answered with a delta sent as a custom message {"type": "update", "payload"} with the
  payload's buffers beside it (payload.to_message), so a keystroke costs what the changed columns
  cost. The snapshot then lags, and is refreshed once typing pauses for SNAPSHOT_DELAY seconds, on
  the kernel's event loop. It keeps the seq of the last delta, so views that are up to date skip it.
- A view pings once when it starts ({"type": "ping", "view"}) and the kernel answers {"type": "pong",
  "view"}: a view that never hears back is showing a saved snapshot, and says so.

Computation runs in trait observers, message handlers and event-loop callbacks, all on the kernel's
main thread (Colab drops widget updates sent from other threads). Every failure becomes a readable
`error` trait; the session rolls itself back, so the next edit recovers, and the text the user typed
is kept.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any

from .lenses import TunedLens
from .payload import to_message
from .session import LensSession, Update

if TYPE_CHECKING:
    from .widget import LensWidget

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer JavaScript counts exactly: edit numbers beyond it are not from our view."""
SNAPSHOT_DELAY = 0.5
"""Seconds of quiet typing after which the snapshot trait catches up with the deltas."""


class WidgetController:
    def __init__(self, widget: LensWidget, session: LensSession, tuned: dict[str, TunedLens | None]) -> None:
        self.widget = widget
        self.session = session
        self.tuned = tuned
        """Each model's tuned lens ("a", and "b" in A/B), for the lens toggle."""
        self.seq = 0
        self._reverting = False
        self._typing = False
        self._stale = False
        self._timer: asyncio.TimerHandle | None = None
        widget.observe(self._on_text, names="text")
        widget.observe(self._on_stride, names="layer_stride")
        widget.observe(self._on_lens, names="lens")
        widget.on_msg(self._on_message)

    def publish(self, update: Update) -> None:
        """Number the update; typing's deltas go to the views as messages, anything else (and any
        full update) becomes the snapshot at once."""
        self.seq += 1
        if self._typing and update.kind != "full":
            header = {**update.payload["header"], "seq": self.seq, "base": self.seq - 1}
            content, buffers = to_message({**update.payload, "header": header})
            self.widget.send({"type": "update", "payload": content}, buffers)
            self._stale = True
            self._schedule_snapshot()
        else:
            self._set_snapshot(update if update.kind == "full" else self.session.full_update())

    def publish_full(self) -> None:
        self.publish(self.session.full_update())

    def refresh_snapshot(self) -> None:
        """Bring the snapshot up to the last delta (same seq), if typing left it behind."""
        self._cancel_timer()
        if self._stale:
            self._run(
                "Could not save the picture",
                lambda: self._set_snapshot(self.session.full_update()),
                clears_error=False,
                publish=False,
            )

    def _set_snapshot(self, full: Update) -> None:
        self._cancel_timer()
        self.widget.snapshot = {**full.payload, "header": {**full.payload["header"], "seq": self.seq, "base": -1}}
        self._stale = False

    def _schedule_snapshot(self) -> None:
        """Refresh the snapshot once typing pauses; with no event loop running (plain Python, tests)
        there is no later, so at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._cancel_timer()
        if loop is None:
            self.refresh_snapshot()
        else:
            self._timer = loop.call_later(SNAPSHOT_DELAY, self.refresh_snapshot)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_text(self, change: Any) -> None:
        self._run("Could not analyse the text", lambda: self.session.set_text(change["new"]))

    def _on_stride(self, change: Any) -> None:
        self._run("Could not change the layer stride", lambda: self.session.set_layer_stride(change["new"]))

    def _on_lens(self, change: Any) -> None:
        if self._reverting:
            return
        lenses = {model: tuned if change["new"] == "tuned" else None for model, tuned in self.tuned.items()}
        if not self._run("Could not switch the lens", partial(self.session.set_lenses, lenses)):
            self._reverting = True  # the session kept its lenses (it rolls back): so does the toggle
            try:
                self.widget.lens = change["old"]
            finally:
                self._reverting = False

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "edit":
            self._on_edit(content)
        elif kind == "request_full":
            # The snapshot is the whole state: bring it up to date, then send it again (unchanged, a
            # trait is not resent by itself). Only a new analysis clears an error.
            self.refresh_snapshot()
            self.widget.send_state("snapshot")
        elif kind == "ping":
            view = content.get("view")
            if not isinstance(view, str) or not 0 < len(view) <= 100:
                return self._refuse("a ping must name its view (a string of 1 to 100 characters)")
            self.widget.send({"type": "pong", "view": view})
        elif kind == "request_vocabulary":
            self.widget.send_state("vocabulary")  # resent even though unchanged (a host lost it)
        else:
            self._refuse(f"unknown message type {kind!r}")

    def _on_edit(self, content: dict[str, Any]) -> None:
        text, view, edit = content.get("text"), content.get("view"), content.get("edit")
        if not isinstance(text, str):
            return self._refuse(f"an edit's text must be a string, got {type(text).__name__}")
        if not isinstance(view, str) or not 0 < len(view) <= 100:
            return self._refuse("an edit must name its view (a string of 1 to 100 characters)")
        if isinstance(edit, bool) or not isinstance(edit, int) or not 0 < edit <= MAX_SAFE_INTEGER:
            return self._refuse(f"an edit's number must be an integer in 1..2^53-1, got {edit!r}")
        self._typing = True
        try:
            self.widget.text = text  # the observer recomputes and reports any failure as `error`
        except Exception as exc:  # sending the new state failed: say so; the view keeps the typing
            self.widget.error = _message("Could not take the edit", exc)
        finally:
            self._typing = False
            self.widget.send({"type": "edit_done", "view": view, "edit": edit})

    def _refuse(self, why: str) -> None:
        """A message no view of ours sends: ignore it, and say so where the user looks."""
        self.widget.error = f"Ignored a malformed message from the view: {why}"

    def _run(self, what: str, step: Any, *, clears_error: bool = True, publish: bool = True) -> bool:
        """Publish what `step` returns, and say whether it succeeded; any failure becomes the `error`
        trait, so the kernel, the session (which rolls itself back) and the view all stay usable."""
        with self.widget.hold_sync():
            try:
                result = step()
                if publish:
                    self.publish(result)
            except Exception as exc:
                self.widget.error = _message(what, exc)
                return False
            if clears_error:
                self.widget.error = ""
            return True


def _message(what: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{what}: {type(exc).__name__}: {text}"
