"""Connects a LensWidget's traits and messages to its LensSession.

The edit protocol has two directions, never mixed (js/sync.ts is the view's half):
- A view's typing arrives as a message, {"type": "edit", "view", "edit", "text"}. The kernel makes
  that text its own (`widget.text = text`, which recomputes) and answers
  {"type": "edit_done", "view", "edit"}, whether the analysis succeeded or not; when the edit's delta
  is sent, the answer rides on it instead ({"type": "update", "payload", "done": {"view", "edit"}}),
  one message fewer per keystroke. Comm messages are
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

The columns on screen first: views report the column range they show ({"type": "visible", "view",
"start", "stop"}, debounced on scroll and resize). A keystroke's delta then carries only the changed
columns on screen (LensSession.set_text(..., visible=...)); the others follow as "cells" deltas, a
chunk per event-loop callback (about CHUNK_SECONDS each, on screen first), so comm messages, a newer
edit among them, are handled between chunks: a newer edit drops the pending columns it replaces, and
the chunks go on with whatever is left. The snapshot is refreshed once nothing is pending. Text set from
Python, and everything else, computes the whole grid before returning (nbconvert shuts the kernel
down right after the last cell).

Pinned items and the trajectory panel (a view's requests, each answered to the view that asked):
- {"type": "pin", "view", "items": [word or token id, ...], "label"?} pins 1 to MAX_PIN_ITEMS words
  (strings of at most MAX_FIELD characters) and token ids (integers >= 0) as one item (widget.pin;
  "label" absent or null: named by its words). Answered {"type": "pin_done", "view", "label": the
  item's label, "error": ""} after the new picture and `pins` trait; on failure {"type": "pin_done",
  "view", "label": "", "error": why}, the picture stays as it was and `error` says why too (a success
  clears it).
- {"type": "unpin", "view", "labels": [label, ...]} unpins those items (every one for []), answered
  {"type": "pin_done", "view", "label": "", "error": "" or why} the same way.
- {"type": "column", "view", "col", "query", "seq"} asks for token column `col` in full
  (LensSession.column: the pinned items, or the tokens top-1 at some row, through every lens each
  model was read through, and a vocabulary search for `query`, at most MAX_FIELD characters; `seq`, an
  integer in 0..2^53-1, is the view's own numbering, sent back so it can drop answers it no longer
  wants). Answered {"type": "column", "view", "seq", "col", "query", "rows": layer indices,
  "row_labels", "names": {"a": name, "b": name in A/B}, "curves": ["<model>/<lens>", ...] (model A's
  current lens first), "lines": [{"label", "ids", "tokens", "pinned", "logp": {curve: [per row]},
  "rank": {curve: [per row]}}], "found": [{"id", "text", "probability", "row"}], "error": ""}, null
  where a cell is invalid. A column that cannot be read (the text changed since the view asked, a
  remote session) is answered with empty rows, row_labels, curves, lines and found and the reason in
  "error", never in the `error` trait: a stale request is normal while typing. The column is read
  from the kept hidden states, so a column still pending is answered at once, without the rest.

What wrote a cell (direct logit attribution, a view's request answered to that view):
- {"type": "attribution", "view", "row", "col", "token", "seq"} asks what wrote the logit of `token`
  (a token id, or null for the cell's top-1) in the cell of session row `row` (a layer index, the
  output num_layers, or num_layers + ℓ for "ℓ.attn") and token column `col` (LensSession.attribution;
  `seq` as for a column). Answered {"type": "attribution", "view", "seq", "row", "col", "models":
  [{"model": "a" | "b", "name", "label", "token_id", "token", "lens", "heads": [[per head] per block],
  "mlps": [per block], "embedding", "biases", "total", "logit", "frozen": [what was frozen]}], one per
  model, "error": ""}; null where a block is after the row. A cell that cannot be attributed (the text
  changed, a remote session, a model lens-widget cannot split) is answered with no models and the
  reason in "error", as a column request is.

Generation (a view's buttons; widget.generate from Python takes every setting):
- {"type": "generate", "view", "max_new_tokens": 1..MAX_NEW_TOKENS, "row": a row index or null (the
  output), "model": "a" | "b"} starts greedy generation (a running one stops first). Each token is
  an append published as any edit is; `text` grows, `generated` gains its range and `generating` is
  true until it ends. A failure goes to the `error` trait.
- {"type": "stop_generation", "view"} ends it; so does any edit or text set from Python.

Computation runs in trait observers, message handlers and event-loop callbacks, all on the kernel's
main thread (Colab drops widget updates sent from other threads). Every failure becomes a readable
`error` trait; the session rolls itself back, so the next edit recovers, and the text the user typed
is kept.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .constants import GENERATION
from .generate import CONTEXT_TOKENS, Generation, Sampling, eos_ids, stop_strings
from .lenses import TunedLens
from .payload import payload_of, to_message
from .pins import MAX_PINS, Pin, pin_of_trait
from .remote_session import Fetched, RemoteSession
from .session import LensSession
from .spans import carry, utf16_length
from .update import Update

if TYPE_CHECKING:
    from .widget import LensWidget

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer JavaScript counts exactly: edit numbers beyond it are not from our view."""
SNAPSHOT_DELAY = 0.5
"""Seconds of quiet typing after which the snapshot trait catches up with the deltas."""
CHUNK_SECONDS = 0.1
"""About how long one chunk of pending columns may hold the kernel: a newer keystroke waits at most
this. Each chunk reads the whole unembedding matrix once, so smaller chunks cost throughput: for a
middle edit on a Pythia-160m-shaped model here, the rest took 1.38 s in 0.1 s chunks and 1.80 s in
0.05 s ones, against 1.12 s all at once."""
MAX_CHUNK_COLUMNS = 256
MAX_VIEWS = 64
"""Views whose visible ranges and hosts are remembered."""
MAX_FIELD = 100
"""Characters in a view's name, a pinned word or a search: longer ones are not from our view."""
MAX_NEW_TOKENS = GENERATION["max_new_tokens"]
"""Tokens one generate request from a view may ask for (constants.json, which the view reads too)."""
MAX_PIN_ITEMS = 16
"""Words and ids pinned as one item from a view: the panel's input takes a few, never hundreds."""
HOSTS = ("", "vscode")
"""What a view's ping may say of its host: "" for any that needs nothing special."""
UNSAVED_HOSTS = frozenset({"vscode"})
"""Hosts that neither save nor replay widget state (vscode-jupyter #4404, #11117)."""
TEXT_BUFFER_HOSTS = frozenset({"vscode"})
"""Hosts that carry a message's binary buffers as JSON arrays of numbers (VS Code's extension host:
about 3.3 characters a byte), to whom typing's deltas go base64-encoded in the JSON (1.33)."""


class WidgetController:
    def __init__(
        self, widget: LensWidget, session: LensSession | RemoteSession, tuned: dict[str, TunedLens | None]
    ) -> None:
        self.widget = widget
        self.session = session
        self.tuned = tuned
        """Each model's tuned lens ("a", and "b" in A/B), for the lens toggle."""
        self.seq = 0
        self._views_visible: dict[str, tuple[int, int]] = {}
        self._front_ends: dict[str, str] = {}
        """Each front end that pinged, and the host it runs in ("vscode", else "")."""
        """Each view's last reported range: a keystroke is answered with its own view's columns."""
        self._editing: str | None = None
        self._reverting = False
        self._typing = False
        self._stale = False
        self._timer: asyncio.TimerHandle | None = None
        self._work: asyncio.Handle | None = None
        self._chunk_columns = 8
        self._published = session.revision
        self._answer: dict[str, Any] | None = None
        """The edit being handled, until a delta carries the answer to it."""
        self._traces: ThreadPoolExecutor | None = None
        """A remote session's one worker: a trace waits on NDIF there while the kernel takes keystrokes."""
        self._in_flight = False
        self._next_text: str | None = None
        """The newest text typed while a trace was in flight: sent when it returns (edits in between
        are dropped, so a fast typist costs one request per round trip, not one per key)."""
        self._generation = 0
        """Counts the traces started and the texts computed at once: a trace's answer is taken only if
        nothing newer was started since (text set from Python while it was in flight wins)."""
        self._writing: Generation | None = None
        """The generation under way (generate()), whose steps run one per event-loop callback."""
        self._written = False
        """Set while a generation step writes the `text` trait (the session has the text already)."""
        widget.observe(self._on_text, names="text")
        widget.observe(self._on_stride, names="layer_stride")
        widget.observe(self._on_lens, names="lens")
        widget.observe(self._on_sublayers, names="sublayers")
        widget.observe(self._on_pins, names="pins")
        widget.on_msg(self._on_message)

    @property
    def visible(self) -> tuple[int, int] | None:
        """The column range [start, stop) the last reporting view shows (None: no view said)."""
        return next(reversed(self._views_visible.values()), None)

    def publish(self, update: Update, delta: bool | None = None) -> None:
        """Number the update; typing's deltas (and pending cells) go to the views as messages, anything
        else becomes the snapshot at once, as does typing's full update unless it leaves columns
        pending (the snapshot, which a saved notebook replays, is always whole)."""
        self.seq += 1
        self._published = self.session.revision
        typing = self._typing if delta is None else delta
        if typing and (update.kind != "full" or self.session.pending):
            base = -1 if update.kind == "full" else self.seq - 1
            payload = payload_of(update)
            header = {**payload["header"], "seq": self.seq, "base": base}
            text = any(host in TEXT_BUFFER_HOSTS for host in self._front_ends.values())
            content, buffers = to_message({**payload, "header": header}, text=text)
            message: dict[str, Any] = {"type": "update", "payload": content}
            if self._answer is not None:
                message["done"], self._answer = self._answer, None
            self.widget.send(message, buffers)
            self._stale = True
            if self.session.pending:
                self._cancel_timer()  # the snapshot waits for the pending columns
            else:
                self._schedule_snapshot()
        else:
            self._set_snapshot(update if update.kind == "full" else self.session.full_update())

    def publish_full(self) -> None:
        self.publish(self.session.full_update())

    def refresh_snapshot(self) -> None:
        """Bring the snapshot up to the last delta (same seq), if typing left it behind; pending columns
        are computed and sent first, so the snapshot is whole."""
        self._cancel_timer()
        self.drain()
        if self._published != self.session.revision:
            self.seq += 1  # cells were computed outside an update (session.grid_arrays): views must take it
            self._stale = True
        if self._stale:
            self._run(
                "Could not save the picture",
                lambda: self._set_snapshot(self.session.full_update()),
                clears_error=False,
                publish=False,
            )

    def drain(self) -> None:
        """Compute and send every pending column now (a caller that needs the whole grid)."""
        self._cancel_work()
        while self.session.pending:
            if not self._run("Could not analyse the text", self._next_chunk, clears_error=False, publish=False):
                self._recover()
                break

    def whole(self) -> None:
        """The whole grid of the widget's text, and the views and snapshot up to date with it, for a
        caller that reads the numbers (grid_data, the exports); raises when the analysis fails."""
        self.refresh_snapshot()
        if self.session.text != self.widget.text:  # an edit failed and the session forgot its state
            self._recover()
            self.refresh_snapshot()
        if self.session.text != self.widget.text:
            raise RuntimeError(f"the picture is not up to date with the text: {self.widget.error or 'analysis failed'}")

    def _recover(self) -> bool:
        """After a failure the session has rolled back to nothing while the views may hold pending
        columns: analyse the widget's text again, whole, and send it as a full picture (the error stays
        shown until an edit succeeds)."""
        return self._run(
            "Could not analyse the text", lambda: self.session.set_text(self.widget.text), clears_error=False
        )

    def _next_chunk(self) -> None:
        started = time.perf_counter()
        update = self.session.compute_pending(self.visible, self._chunk_columns)
        if update is None:
            return
        self._chunk_columns = chunk_columns(time.perf_counter() - started, update.cell_end - update.cell_start)
        self.publish(update, delta=True)
        self._stale = True

    def _schedule_work(self) -> None:
        """Compute pending columns a chunk per event-loop callback; with no loop running (plain Python,
        tests) at once."""
        if not self.session.pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.drain()
        if self._work is None:
            self._work = loop.call_soon(self._work_step)

    def _work_step(self) -> None:
        self._work = None
        if self.session.pending:
            if not self._run("Could not analyse the text", self._next_chunk, clears_error=False, publish=False):
                self._recover()
                return
            if self.session.pending:
                self._schedule_work()
                return
        # Nothing left (also when something else computed the pending columns): the snapshot catches up.
        self._schedule_snapshot()

    def _cancel_work(self) -> None:
        if self._work is not None:
            self._work.cancel()
            self._work = None

    def _set_snapshot(self, full: Update) -> None:
        self._cancel_timer()
        payload = payload_of(full)
        self.widget.snapshot = {**payload, "header": {**payload["header"], "seq": self.seq, "base": -1}}
        self._published = self.session.revision
        self._stale = False

    def _schedule_snapshot(self) -> None:
        """Refresh the snapshot once typing pauses; with no event loop running (plain Python, tests)
        there is no later, so at once. Not while every front end is one that does not save widget
        state: there the whole picture, resent after each pause, was 99 % of what typing carried
        (680 kB at 1,024 tokens, 2.1 M characters as VS Code's JSON number arrays)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._cancel_timer()
        if self._front_ends and not any(host not in UNSAVED_HOSTS for host in self._front_ends.values()):
            return  # nobody saves it: it catches up when asked (a new front end, request_full, whole())
        if loop is None and self._writing is None:
            self.refresh_snapshot()
        elif loop is not None:
            self._timer = loop.call_later(SNAPSHOT_DELAY, self.refresh_snapshot)
        # else: a generation without a loop refreshes it once, when it ends (generate())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_text(self, change: Any) -> None:
        if self._written:
            return
        self.stop_generation("typing" if self._typing else "stopped")  # the person's text wins
        self._carry_generated(change["old"], change["new"])
        if isinstance(self.session, RemoteSession):
            return self._on_remote_text(change["new"])
        visible = self._typing_range() if self._typing else None  # text set from Python: the whole grid, now
        if self._run("Could not analyse the text", lambda: self.session.set_text(change["new"], visible)):
            self._schedule_work()

    def _on_remote_text(self, text: str) -> None:
        """Typing: one trace at a time, off the main thread, the picture kept until it returns; text
        set from Python (or no event loop): traced now, as LensSession computes it now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if not self._typing or loop is None:
            self._generation += 1
            self._next_text = None
            self._run("Could not analyse the text", lambda: self.session.set_text(text))
            return
        if self._in_flight:
            self._next_text = text
            return
        assert isinstance(self.session, RemoteSession)
        self._in_flight = True
        self._generation += 1
        generation = self._generation
        self.widget.remote_status = "queued" if self.session.remote is True else "running"

        def report(status: str) -> None:  # from the worker: the trait is set on the main thread
            loop.call_soon_threadsafe(self._report, generation, status)

        if self._traces is None:
            self._traces = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lens-widget-trace")
        future = loop.run_in_executor(self._traces, self.session.fetch, text, report)
        future.add_done_callback(partial(self._traced, generation))

    def _report(self, generation: int, status: str) -> None:
        if self._in_flight and generation == self._generation:
            self.widget.remote_status = status

    def _traced(self, generation: int, future: asyncio.Future[Fetched]) -> None:
        """A trace returned (on the main thread): its picture, unless something newer was computed
        meanwhile; then the newest text typed while it was out, if any."""
        self._in_flight = False
        session = self.session
        assert isinstance(session, RemoteSession)
        if future.cancelled():  # the widget was closed
            return
        if generation == self._generation:
            error = future.exception()
            if error is not None:
                self.widget.error = _message("Could not analyse the text", error)
            else:
                self._run("Could not analyse the text", lambda: session.accept(future.result()))
        text, self._next_text = self._next_text, None
        if text is not None and text != session.text:
            self._typing = True
            try:
                self._on_remote_text(text)
            finally:
                self._typing = False
        else:
            self.widget.remote_status = ""

    # --- generation ---------------------------------------------------------------------------

    def generate(
        self,
        max_new_tokens: int,
        temperature: float,
        top_p: float | None,
        stop: str | list[str] | None,
        row: int | None,
        model: str,
        seed: int | None,
    ) -> None:
        """Start writing (LensWidget.generate): settings checked first, then one token per event-loop
        callback, or all at once where no loop runs (a script, a test)."""
        session = self.session
        if isinstance(session, RemoteSession):
            raise ValueError("generation needs the session's cache and hidden states, which remote= does not keep")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if model not in session.models:
            raise ValueError(f"model must be one of {session.models}, got {model!r}")
        sampling, stops = Sampling.of(temperature, top_p, seed), stop_strings(stop)
        self.whole()  # the text analysed, its last column's hidden states kept
        session.next_logits(model, row)  # refuses a bad row, or no text, before anything changes
        self.stop_generation("stopped")
        writing = Generation(
            sampling,
            stops,
            max_new_tokens,
            model,
            row,
            eos_ids(session.model_of(model), session.tokenizer),
            session.tokenizer,
            list(session.tokens.ids[-CONTEXT_TOKENS:]),
        )
        self._writing = writing
        self.widget.generating = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.call_soon(self._generation_step, writing)
            return
        while self._writing is writing:
            self._generation_step(writing)
        self.refresh_snapshot()

    def _on_generate(self, content: dict[str, Any]) -> None:
        count, row, model = content.get("max_new_tokens"), content.get("row"), content.get("model", "a")
        if not _is_count(count) or not 0 < count <= MAX_NEW_TOKENS:
            return self._refuse(f"a generate request's max_new_tokens must be 1..{MAX_NEW_TOKENS}, got {_short(count)}")
        if row is not None and not _is_count(row):
            return self._refuse(f"a generate request's row must be a row index or null, got {_short(row)}")
        if model not in ("a", "b"):
            return self._refuse(f"a generate request's model must be 'a' or 'b', got {_short(model)}")
        try:
            self.generate(count, 0.0, None, None, row, model, None)
        except Exception as exc:  # no text, a bad row, a remote session: said where the user looks
            self.widget.error = _message("Could not generate", exc)

    def stop_generation(self, why: str = "stopped") -> None:
        """End the generation under way, if any (the stop button, typing, text set from Python)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.ended = writing.ended or why
            self.widget.generating = False

    def _generation_step(self, writing: Generation) -> None:
        if self._writing is not writing:
            return  # stopped since this step was scheduled
        session = self.session
        assert isinstance(session, LensSession)
        start = utf16_length(session.text)

        def step() -> None:
            token, added = writing.next(session)
            self.publish(session.append_tokens([token], added, self.visible), delta=True)  # as typing's

        if not self._run("Could not generate the next token", step, publish=False):
            writing.ended = "error"
            self.stop_generation("error")
            self._recover()  # the session rolled back: the text written so far, analysed again
            return
        self._written = True
        try:
            self.widget.text = session.text
        finally:
            self._written = False
        end = utf16_length(session.text)
        if end > start:
            row = session.num_layers if writing.row is None else writing.row
            self.widget.generated = _joined([*self.widget.generated, [start, end, row]])
        self._schedule_work()
        if writing.ended:
            self.stop_generation(writing.ended)
            return
        try:
            asyncio.get_running_loop().call_soon(self._generation_step, writing)
        except RuntimeError:
            pass  # no loop: generate() runs the steps in its own loop

    def _carry_generated(self, old: str, new: str) -> None:
        """The ranges the model wrote, through an edit by a person (what they changed is theirs)."""
        written = self.widget.generated
        if not written:
            return
        carried = []
        for row in sorted({r[2] for r in written}):
            ranges = [(a, b) for a, b, r in written if r == row]
            carried += [[a, b, row] for a, b in carry(ranges, old, new, "clip")]
        self.widget.generated = sorted(carried)

    def close(self) -> None:
        self.stop_generation("stopped")
        if self._traces is not None:
            self._traces.shutdown(wait=False, cancel_futures=True)
            self._traces = None

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

    def _on_sublayers(self, change: Any) -> None:
        if self._reverting:
            return
        step = partial(self.session.set_sublayers, bool(change["new"]))
        if not self._run("Could not change the rows after attention", step):
            self._reverting = True  # the session kept its rows (it rolls back): so does the toggle
            try:
                self.widget.sublayers = change["old"]
            finally:
                self._reverting = False

    def pin(self, items: tuple[str | int, ...], label: str | None) -> str:
        """Pin one item (widget.pin): raises on a bad item, and the picture stays as it was."""
        pin = self.session.make_pin(*items, label=label)
        self.apply_pins([*self.session.pins, pin])
        return pin.label

    def unpin(self, labels: tuple[str, ...]) -> None:
        """Unpin these items, all when none is named (widget.unpin); an unknown label raises."""
        known = [p.label for p in self.session.pins]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not pinned; pinned: {known}")
        self.apply_pins([p for p in self.session.pins if labels and p.label not in labels])

    def apply_pins(self, pins: list[Pin]) -> None:
        """The session's pins, the picture and the `pins` trait, changed together (or not at all)."""
        update = self.session.set_pins(pins)
        with self.widget.hold_sync():
            self.publish(update)
            self._reverting = True
            try:
                self.widget.pins = [p.as_trait(self.session.token_strings()) for p in self.session.pins]
            finally:
                self._reverting = False
            # A statistic of an item no longer pinned falls back to the default.
            pinned = {f"pin:{p.label}" for p in self.session.pins}
            if self.widget.statistic.startswith("pin:") and self.widget.statistic not in pinned:
                self.widget.statistic = "entropy"
            shown = self.widget.diff_statistic.removeprefix("delta:")
            if shown.startswith("pin:") and shown not in pinned:
                self.widget.diff_statistic = "js"

    def _on_pins(self, change: Any) -> None:
        """The trait set directly (Python, or a notebook's saved state): pinned as it says, or put back."""
        if self._reverting:
            return
        try:
            pins = [pin_of_trait(entry) for entry in change["new"]]
            self.apply_pins(pins)
            self.widget.error = ""
        except Exception as exc:
            self._reverting = True
            try:
                self.widget.pins = change["old"]
            finally:
                self._reverting = False
            self.widget.error = _message("Could not pin", exc)

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
            host = content.get("host", "")
            if not _is_name(view):
                return self._refuse("a ping must name its view (a string of 1 to 100 characters)")
            if host not in HOSTS:
                return self._refuse(f"a ping's host must be one of {', '.join(map(repr, HOSTS))}, got {_short(host)}")
            _remember(self._front_ends, view, host)
            if self._stale:  # a new front end read the snapshot when it connected: bring it up to date
                self.refresh_snapshot()
            self.widget.send({"type": "pong", "view": view})
        elif kind == "visible":
            self._on_visible(content)
        elif kind == "request_vocabulary":
            self.widget.send_state("vocabulary")  # resent even though unchanged (a host lost it)
        elif kind == "pin":
            self._on_pin(content)
        elif kind == "unpin":
            self._on_unpin(content)
        elif kind == "column":
            self._on_column(content)
        elif kind == "attribution":
            self._on_attribution(content)
        elif kind == "generate":
            self._on_generate(content)
        elif kind == "stop_generation":
            self.stop_generation("stopped")
        else:
            self._refuse(f"unknown message type {kind!r}")

    def _on_edit(self, content: dict[str, Any]) -> None:
        text, view, edit = content.get("text"), content.get("view"), content.get("edit")
        if not isinstance(text, str):
            return self._refuse(f"an edit's text must be a string, got {type(text).__name__}")
        if not _is_name(view):
            return self._refuse("an edit must name its view (a string of 1 to 100 characters)")
        if isinstance(edit, bool) or not isinstance(edit, int) or not 0 < edit <= MAX_SAFE_INTEGER:
            return self._refuse(f"an edit's number must be an integer in 1..2^53-1, got {edit!r}")
        self._typing = True
        self._editing = view
        self._answer = {"view": view, "edit": edit}
        try:
            self.widget.text = text  # the observer recomputes and reports any failure as `error`
        except Exception as exc:  # sending the new state failed: say so; the view keeps the typing
            self.widget.error = _message("Could not take the edit", exc)
        finally:
            self._typing = False
            if self._answer is not None:  # no delta carried it (a failure, the same text)
                self.widget.send({"type": "edit_done", **self._answer})
            self._answer = None

    def _typing_range(self) -> tuple[int, int] | None:
        """The columns to compute first for a keystroke: the view's, and when it shows the end of the
        text, the new columns too (it scrolls to follow the caret onto them), a screen's width of them."""
        visible = self._views_visible.get(self._editing or "", self.visible)
        if visible is None:
            return None
        start, stop = visible
        n = len(self.session.tokens.ids)
        start = min(start, n)  # a range reported for a longer text (a view scrolled past the new end)
        return (start, max(start, n + (stop - start))) if stop >= n else (start, stop)

    def _on_visible(self, content: dict[str, Any]) -> None:
        start, stop, view = content.get("start"), content.get("stop"), content.get("view")
        if not _is_name(view):
            return self._refuse("a visible range must name its view (a string of 1 to 100 characters)")
        if not all(_is_count(x) for x in (start, stop)):
            return self._refuse(f"a visible range needs integer start and stop, got {start!r}, {stop!r}")
        if start > stop:
            return self._refuse(f"a visible range must have start <= stop, got {start}, {stop}")
        _remember(self._views_visible, view, (start, stop))

    def _on_pin(self, content: dict[str, Any]) -> None:
        view, items, label = content.get("view"), content.get("items"), content.get("label")
        if not _is_name(view):
            return self._refuse(f"a pin must name its view (a string of 1 to {MAX_FIELD} characters)")
        if not isinstance(items, list) or not 0 < len(items) <= MAX_PIN_ITEMS or not all(map(_is_item, items)):
            return self._refuse(
                f"a pin's items must be 1 to {MAX_PIN_ITEMS} words (strings of at most {MAX_FIELD} characters) "
                f"or token ids (integers >= 0), got {_short(items)}"
            )
        if label is not None and not isinstance(label, str):
            return self._refuse(f"a pin's label must be a string, got {type(label).__name__}")
        # A word no token begins, too many pins, a label taken: the picture stays, and the view is told.
        self._pin_done(view, "Could not pin", lambda: self.pin(tuple(items), label))

    def _on_unpin(self, content: dict[str, Any]) -> None:
        view, labels = content.get("view"), content.get("labels")
        if not _is_name(view):
            return self._refuse(f"an unpin must name its view (a string of 1 to {MAX_FIELD} characters)")
        if (
            not isinstance(labels, list)
            or len(labels) > MAX_PINS
            or not all(isinstance(x, str) and len(x) <= MAX_FIELD for x in labels)
        ):
            return self._refuse(f"an unpin's labels must be a list of at most {MAX_PINS} strings, got {_short(labels)}")
        self._pin_done(view, "Could not unpin", lambda: self.unpin(tuple(labels)))

    def _pin_done(self, view: str, what: str, step: Callable[[], str | None]) -> None:
        """Run a pin or unpin for a view and answer it with the item's label, or why it failed (also in
        the `error` trait, which a success clears)."""
        try:
            label = step()
        except Exception as exc:
            self.widget.error = _message(what, exc)
            self.widget.send({"type": "pin_done", "view": view, "label": "", "error": self.widget.error})
            return
        self.widget.error = ""
        self.widget.send({"type": "pin_done", "view": view, "label": label or "", "error": ""})

    def _on_column(self, content: dict[str, Any]) -> None:
        view, col, query, seq = (content.get(key) for key in ("view", "col", "query", "seq"))
        if not _is_name(view):
            return self._refuse(f"a column request must name its view (a string of 1 to {MAX_FIELD} characters)")
        if not _is_count(col):
            return self._refuse(f"a column request's col must be an integer in 0..2^53-1, got {_short(col)}")
        if not isinstance(query, str) or len(query) > MAX_FIELD:
            return self._refuse(f"a column request's query must be a string of at most {MAX_FIELD} characters")
        if not _is_count(seq):
            return self._refuse(f"a column request's seq must be an integer in 0..2^53-1, got {_short(seq)}")
        reply: dict[str, Any] = {"type": "column", "view": view, "seq": seq, "col": col, "query": query}
        try:
            reply.update(column_answer(self.session, col, query), error="")
        except Exception as exc:  # the text changed since the view asked (normal while typing), or no column
            names = dict(zip(self.session.models, self.session.names, strict=True))
            empty = {"rows": [], "row_labels": [], "names": names, "curves": [], "lines": [], "found": []}
            reply.update(empty, error=_message("Could not read the column", exc))
        self.widget.send(reply)

    def _on_attribution(self, content: dict[str, Any]) -> None:
        view, row, col, token, seq = (content.get(key) for key in ("view", "row", "col", "token", "seq"))
        if not _is_name(view):
            return self._refuse(f"an attribution request must name its view (a string of 1 to {MAX_FIELD} characters)")
        for name, value in (("row", row), ("col", col), ("seq", seq)):
            if not _is_count(value):
                return self._refuse(
                    f"an attribution request's {name} must be an integer in 0..2^53-1, got {_short(value)}"
                )
        if token is not None and not _is_count(token):
            return self._refuse(f"an attribution request's token must be a token id or null, got {_short(token)}")
        reply: dict[str, Any] = {"type": "attribution", "view": view, "seq": seq, "row": row, "col": col}
        try:
            reply.update(models=attribution_answer(self.session, row, col, token), error="")
        except Exception as exc:  # the text changed since the view asked, a remote session, a model not split
            reply.update(models=[], error=_message("Could not attribute the cell", exc))
        self.widget.send(reply)

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


V = TypeVar("V")


def _remember(by_view: dict[str, V], view: str, value: V) -> None:
    """Keep a view's newest report as the mapping's last entry, and only the latest MAX_VIEWS views
    (views come and go, and a closed one never says so)."""
    by_view.pop(view, None)
    by_view[view] = value
    while len(by_view) > MAX_VIEWS:
        by_view.pop(next(iter(by_view)))


def _joined(ranges: list[list[int]]) -> list[list[int]]:
    """[start, end, row] ranges with the touching ones of one row joined: a generation makes one."""
    out: list[list[int]] = []
    for a, b, row in ranges:
        if out and out[-1][1] == a and out[-1][2] == row:
            out[-1] = [out[-1][0], b, row]
        else:
            out.append([a, b, row])
    return out


def chunk_columns(seconds: float, columns: int) -> int:
    """How many pending columns the next chunk takes, after `columns` took `seconds`: about
    CHUNK_SECONDS' worth, so a keystroke never waits much longer behind one."""
    per_column = seconds / max(1, columns)
    return max(1, min(MAX_CHUNK_COLUMNS, int(CHUNK_SECONDS / max(per_column, 1e-6))))


def column_answer(session: LensSession | RemoteSession, col: int, query: str) -> dict[str, Any]:
    """The answer to a column request but its echoed fields and error, from session.column: plain
    JSON, as the kernel's messages must be (no NaN: an invalid cell is null)."""
    detail = session.column(col, query)
    strings = session.token_strings()
    labels = dict(zip(session.rows, session.row_labels, strict=True))
    lines = [
        {
            "label": line.label,
            "ids": list(line.ids),
            "tokens": [strings[i] if i < len(strings) else f"<{i}>" for i in line.ids],
            "pinned": line.pinned,
            "logp": {curve: list(values) for curve, values in line.logp.items()},
            "rank": {curve: list(values) for curve, values in line.rank.items()},
        }
        for line in detail.lines
    ]
    found = [
        {"id": f.id, "text": f.text, "probability": _finite_or_none(f.probability), "row": f.row} for f in detail.found
    ]
    return {
        "rows": list(detail.rows),
        "row_labels": [labels[r] for r in detail.rows],
        "names": dict(zip(session.models, session.names, strict=True)),
        "curves": list(detail.curves),
        "lines": lines,
        "found": found,
    }


def attribution_answer(
    session: LensSession | RemoteSession, row: int, col: int, token: int | None
) -> list[dict[str, Any]]:
    """Each model's attribution of one cell, as plain JSON (NaN, a block after the row, is null)."""
    if isinstance(session, RemoteSession):
        raise ValueError("a remote session keeps no hidden states or cache to attribute a cell from")
    out = []
    for model in session.models:
        a = session.attribution(row, col, token, model=model)
        out.append(
            {
                "model": model,
                "name": a.model,
                "label": a.label,
                "token_id": a.token_id,
                "token": a.token,
                "lens": a.lens,
                "heads": [[_finite_or_none(float(v)) for v in block] for block in a.heads],
                "mlps": [_finite_or_none(float(v)) for v in a.mlps],
                "embedding": a.embedding,
                "biases": a.biases,
                "total": a.total,
                "logit": a.logit,
                "frozen": list(a.frozen),
            }
        )
        token = a.token_id if token is None else token  # B explains A's token, so the two compare
    return out


def _finite_or_none(value: float) -> float | None:
    """A best probability over rows that include an invalid cell is NaN, which JSON cannot carry."""
    return value if math.isfinite(value) else None


def _is_name(value: Any) -> bool:
    """A view's name as our views make them."""
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD


def _is_count(value: Any) -> bool:
    """An integer JavaScript holds exactly, from 0 (a bool is not one, though Python says so)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER


def _is_item(value: Any) -> bool:
    """A word (at most MAX_FIELD characters) or a token id, as a view pins them."""
    if isinstance(value, str):
        return len(value) <= MAX_FIELD
    return _is_count(value)


def _short(value: Any) -> str:
    """A value for a message about it, cut so that a huge malformed message makes no huge error."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _message(what: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{what}: {type(exc).__name__}: {text}"
