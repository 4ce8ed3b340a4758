"""LensWidget: the anywidget that shows a LensSession live in a notebook.

The class holds traits only; `controller.py` connects them to the session. Traits mirror the
TypeScript `Model` in js/widget.ts one to one.
"""

from __future__ import annotations

import datetime
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets
from torch import nn

from . import chat
from .chat_sync import ChatSync
from .constants import PRESENTATION, VIEW_TRAITS
from .controller import WidgetController
from .lenses import Lens, TunedLens
from .payload import encode_vocabulary
from .remote_session import RemoteSession
from .session import LensSession
from .statistics import DIFF_STATISTICS, STATISTICS
from .text import without_lone_surrogates
from .widget_guards import check_options, ignored_message, lens_argument, split_view_state

if TYPE_CHECKING:
    from .attribution import Attribution
    from .export import GridData

_STATIC = Path(__file__).parent / "static"
DIFF_CHOICES = (*DIFF_STATISTICS, *(f"delta:{name}" for name in STATISTICS))
"""What the diff mode can show: pair statistics, and B − A of each single-model statistic."""


def check_shown(value: Any, pins: list[dict[str, Any]], choices: tuple[str, ...], name: str, prefix: str = "") -> str:
    """A statistic the widget can show: one of `choices`, or "<prefix>pin:<label>" of a pinned item."""
    shown = [*choices, *(f"{prefix}pin:{p.get('label')}" for p in pins)]
    if value in shown:
        return str(value)
    raise traitlets.TraitError(f"{name} must be one of {shown}, got {value!r}")


class LensWidget(anywidget.AnyWidget):
    """Type text; watch what every layer would predict, through the logit or tuned lens.

    remote: an nnsight model traced once per edit: True on NDIF (its API key, a model it hosts),
      "local" in nnsight's dry run of that here. Typing goes on while a trace is out; the newest text
      is sent when it returns, and the view shows "queued" / "running" over the previous picture.
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    text = traitlets.Unicode("").tag(sync=True)
    """The text being analysed; views send typing as edit messages and show this (controller.py)."""
    statistic = traitlets.Unicode("entropy").tag(sync=True)
    """What colours the cells of one model: a statistic, or "pin:<label>", a pinned item's probability."""
    diff_statistic = traitlets.Unicode("js").tag(sync=True)
    """What the A/B diff mode shows: a pair statistic (DIFF_STATISTICS) or "delta:<statistic>" (B − A)."""
    mode = traitlets.Enum(("a", "b", "diff"), default_value="a").tag(sync=True)
    """The mode a view starts in (A/B only): switching it in the view is the view's own, with no message."""
    token_range = traitlets.List(traitlets.Int(allow_none=True), default_value=[]).tag(sync=True)
    """[start, end] of the token columns shown (end None: to the last); [] shows every column."""
    layer_stride = traitlets.Int(1).tag(sync=True)
    """Show every n-th layer; the output row always stays."""
    lens = traitlets.Enum(("logit", "tuned"), default_value="logit").tag(sync=True)
    """The lens in use."""
    lens_options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Lenses the user can switch between ("tuned" only when a tuned lens was given)."""
    snapshot = traitlets.Dict().tag(sync=True)
    """The whole current picture, a full payload with its seq: what saved notebooks and pages replay."""
    vocabulary = traitlets.Dict().tag(sync=True)
    """Every token id's text, sent once (payload.encode_vocabulary)."""
    error = traitlets.Unicode("").tag(sync=True)
    """A readable message about the last failure, or empty."""
    remote_status = traitlets.Unicode("").tag(sync=True)
    """With remote=: "queued" or "running" while a trace of the typed text is out, else empty."""
    pins = traitlets.List(traitlets.Dict()).tag(sync=True)
    """The pinned items ({label, ids, words, tokens}), which the trajectory panel follows: see pin()."""
    color_scale = traitlets.Enum(tuple(PRESENTATION["scale_modes"]), default_value="fixed").tag(sync=True)
    """"fixed": one colour scale per statistic for every lens, model and picture; "view": each picture's own range."""
    sublayers = traitlets.Bool(False).tag(sync=True)
    """Show the residual stream after each attention as a row ("3.attn") under its layer."""
    generated = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    """[start, end, row]: text the model wrote (generate()), UTF-16 units as token spans, from `row`'s prediction."""
    generating = traitlets.Bool(False).tag(sync=True)
    """Whether generate() is writing now (the view shows its stop button); only the kernel sets it."""
    messages = traitlets.List(traitlets.Dict()).tag(sync=True)
    """The conversation ({"role", "content"}): set it to render the chat template into `text`; typing follows."""
    roles = traitlets.List(traitlets.Dict()).tag(sync=True)
    """Whose each part of `text` is ({role, start, end, special, message}, UTF-16 units); only the kernel sets it."""
    instance = traitlets.Unicode().tag(sync=True)
    """This widget's own key, by which its views find the one decoded state they share (js/store.ts)."""

    @traitlets.default("instance")
    def _new_instance(self) -> str:
        return uuid.uuid4().hex

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lens: Lens | str | None = None,
        *,
        model_b: nn.Module | None = None,
        lens_b: Lens | str | None = None,
        names: tuple[str, str] | None = None,
        text: str = "",
        statistic: str = "entropy",
        layer_stride: int = 1,
        top_k: int = 10,
        max_tokens: int | None = None,
        device: str | None = None,
        keep_on: str = "auto",
        chunk_bytes: int | None = None,
        remote: bool | str = False,
        sublayers: bool = False,
        messages: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> None:
        check_options(type(self), kwargs)
        lens, lens_b = lens_argument(lens, "lens"), lens_argument(lens_b, "lens_b")
        transcript = self._chat_text(tokenizer, messages, text, add_generation_prompt)
        text = transcript.text if transcript else text
        session: LensSession | RemoteSession
        if remote is not False:  # one nnsight trace per edit, on NDIF (True) or in nnsight's dry run ("local")
            unsupported = {"model_b": model_b, "lens_b": lens_b, "device": device, "chunk_bytes": chunk_bytes}
            given = [name for name, value in unsupported.items() if value is not None] + (
                ["keep_on"] if keep_on != "auto" else []
            )
            given += ["sublayers"] if sublayers else []
            if given:
                raise ValueError(
                    f"{', '.join(given)} cannot be used with remote=: NDIF runs one model, where it is, with no state "
                    "kept between requests"
                )
            session = RemoteSession(
                model, tokenizer, lens, remote=remote, top_k=top_k, layer_stride=layer_stride, max_tokens=max_tokens
            )
        else:
            session = LensSession(
                model,
                tokenizer,
                lens,
                model_b=model_b,
                lens_b=lens_b,
                names=names,
                top_k=top_k,
                layer_stride=layer_stride,
                device=device,
                max_tokens=max_tokens,
                keep_on=keep_on,
                chunk_bytes=chunk_bytes,
                sublayers=sublayers,
                add_special_tokens=transcript is None,  # a chat template's rendering holds its own BOS
            )
        tuned = {"a": lens if isinstance(lens, TunedLens) else None}
        if model_b is not None:
            # B shares A's tuned lens unless given its own, and keeps an explicit logit lens.
            tuned["b"] = lens_b if isinstance(lens_b, TunedLens) else tuned["a"] if lens_b is None else None
        has_tuned = any(t is not None for t in tuned.values())
        kwargs.setdefault("mode", "diff" if model_b is not None else "a")
        self._open_later = True  # the comm opens with the first picture (open())
        super().__init__(
            statistic=statistic,
            layer_stride=layer_stride,
            sublayers=sublayers,
            lens="tuned" if has_tuned else "logit",
            lens_options=["tuned", "logit"] if has_tuned else ["logit"],
            vocabulary=encode_vocabulary(session.token_strings()),
            **kwargs,
        )
        self._controller = WidgetController(self, session, tuned)
        self.chat_sync = ChatSync(self, tokenizer, add_generation_prompt)
        """Keeps `messages`, `text` and `roles` in step (chat_sync.py)."""
        if transcript is not None:
            self.chat_sync.show(chat.check_messages(messages), transcript)
        self.text = text
        if not text:
            self._controller.publish_full()
        self._open_later = False
        self.open()

    @classmethod
    def chat(
        cls,
        model: nn.Module,
        tokenizer: Any,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> LensWidget:
        """A conversation rendered with the tokenizer's own chat template (a NoChatTemplateError, a
        ValueError naming the tokenizer, when it has none), each token's role in a band under the
        input row. Edit it by setting `messages` (the template is rendered again, only the changed
        columns recomputed) or by typing (`messages` follows); the generation prompt leaves the
        assistant's turn open, so that what generate() writes is the assistant's message. Other
        arguments as LensWidget's."""
        chat.check_template(tokenizer)
        return cls(model, tokenizer, messages=messages, add_generation_prompt=add_generation_prompt, **kwargs)

    @staticmethod
    def _chat_text(
        tokenizer: Any, messages: list[dict[str, Any]] | None, text: str, add_generation_prompt: bool
    ) -> chat.Transcript | None:
        """The conversation given to the constructor as text, checked before any model work is done."""
        if messages is None:
            return None
        if text:
            raise ValueError("give text or messages, not both: the text of a conversation is its template's rendering")
        return chat.render(tokenizer, messages, add_generation_prompt=add_generation_prompt)

    def open(self) -> None:
        """Open the comm once the first picture is in the snapshot, so that it travels once, with the
        widget's creation: opened empty, it followed as an update, and the view, finding none yet,
        asked for it again (a second whole picture; a host that drops buffers sent at creation, as
        Colab's can, still gets one by asking)."""
        if not getattr(self, "_open_later", False):
            super().open()

    def get_state(self, key: str | list[str] | None = None, drop_defaults: bool = False) -> dict[str, Any]:
        """ipywidgets' state, but `drop_defaults` (embed_minimal_html's default) keeps what the page
        needs: anywidget's module and CSS (their trait defaults are their values, so they would be
        dropped, and the page fails with "[anywidget] Failed to initialize model"), the model and
        view class names (which the page cannot fill in for anywidget's classes) and every trait the
        view reads."""
        state = super().get_state(key=key, drop_defaults=drop_defaults)
        if drop_defaults and key is None:
            classes = ("_model_module", "_model_module_version", "_model_name", "_view_module", "_view_module_version")
            kept = ("_anywidget_id", "_esm", "_css", *classes, "_view_name", *VIEW_TRAITS)
            state.update({k: v for k, v in super().get_state(drop_defaults=False).items() if k in kept})
        return state

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A view's update, less the traits only the kernel writes (widget_guards.KERNEL_ONLY): those
        go back to the views as they are and the change is reported in `error`, not silently taken."""
        accepted, ignored = split_view_state(sync_data)
        if accepted:
            super().set_state(accepted)
        if ignored:
            self.send_state(ignored)
            self.error = ignored_message(ignored)

    def close(self) -> None:
        """Closed with its views; a trace still out (remote=) is no longer waited for."""
        controller = getattr(self, "_controller", None)
        if controller is not None:
            controller.close()
        super().close()

    @traitlets.validate("text")
    def _encodable_text(self, proposal: Any) -> str:
        """A lone surrogate cannot be encoded in a message to the views (it would break the widget)."""
        return without_lone_surrogates(proposal["value"])

    @traitlets.validate("statistic")
    def _check_statistic(self, proposal: Any) -> str:
        return check_shown(proposal["value"], self.pins, STATISTICS, "statistic")

    @traitlets.validate("diff_statistic")
    def _check_diff_statistic(self, proposal: Any) -> str:
        return check_shown(proposal["value"], self.pins, DIFF_CHOICES, "diff_statistic", prefix="delta:")

    def pin(self, *items: str | int, label: str | None = None) -> str:
        """Follow a token, or a set of tokens whose probabilities add up, across the layers: words (each
        its token set: every token that begins it, with and without the space) and token ids, pinned as
        one item. Returns its label; its probability colours the heatmap as the "p(label)" statistic."""
        return self._controller.pin(items, label)

    def unpin(self, *labels: str) -> None:
        """Stop following these pinned items (all of them when none is named)."""
        self._controller.unpin(labels)

    def generate(
        self,
        max_new_tokens: int = 20,
        temperature: float = 0.0,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        *,
        layer: int | None = None,
        model: str = "a",
        seed: int | None = None,
    ) -> None:
        """Let the model continue the text, a token at a time, each an append through the incremental
        path (a new column per token). Greedy at temperature 0, as model.generate(do_sample=False);
        else sampled (top_p: the nucleus; seed: repeatable). Ends at max_new_tokens, the model's EOS, a
        `stop` string, or max_tokens; typing, setting `text` or stop_generation() end it sooner. In a
        notebook it runs on the kernel's event loop (the cell returns at once; `generating` says when it
        ends); without one (a script) it returns when done. layer: follow that row's lens prediction
        instead of the output (what the model would have said had it stopped there); model: "b" lets
        model B write in A/B, A being read on its tokens."""
        if self.messages:  # a conversation: what the model writes is the assistant's message
            self.chat_sync.open_assistant_turn()
        self._controller.generate(max_new_tokens, temperature, top_p, stop, layer, model, seed)

    def stop_generation(self) -> None:
        """End generate() now; what it wrote stays."""
        self._controller.stop_generation("stopped")

    def attribution(self, layer: int, position: int, token: int | str | None = None, model: str = "a") -> Attribution:
        """What wrote one cell's logit for `token` (the cell's top-1 by default; an id or a token's text):
        the embedding, each attention head, each MLP and the biases, which add up to the logit. layer:
        a row index (num_layers is the output; num_layers + ℓ the sublayer row "ℓ.attn"); model: "b"
        for model B, read at its own layer for A's row. `.to_frame()` gives a pandas DataFrame."""
        if isinstance(self.session, RemoteSession):
            raise ValueError("attribution needs the session's hidden states and cache, which remote= does not keep")
        self._controller.whole()
        return self.session.attribution(layer, position, token, model=model)

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
    def session(self) -> LensSession | RemoteSession:
        """The engine behind the view (for inspection; change the widget through its traits)."""
        return self._controller.session

    def grid_data(self, column: int | None = None) -> GridData:
        """The numbers behind the picture as it is set up (statistic, mode, stride, token range,
        colour scale): arrays, row labels, token strings and pinned items' probabilities; `.to_frame()`
        gives a pandas DataFrame. column: a token position whose trajectory to include (`to_png`'s panel)."""
        from .export import grid_data

        self._controller.whole()  # pending columns computed and sent to the views; raises if it fails
        return grid_data(
            self.session,
            statistic=self.statistic,
            diff_statistic=self.diff_statistic,
            mode=self.mode,
            layer_stride=self.layer_stride,
            token_range=self.token_range,
            color_scale=self.color_scale,
            column=column,
            sublayers=self.sublayers,
        )

    def to_png(
        self,
        path: str | os.PathLike[str],
        scale: float = 2.0,
        *,
        column: int | None = None,
        panel_y: str = "probability",
    ) -> Path:
        """Write the heatmap with its labels and legend as a PNG, drawn in the kernel (matplotlib:
        `pip install matplotlib`), so a cell can save it without waiting for a view; below
        it the trajectory panel of token position `column` (None: the last): the pinned items, or the
        tokens that are top-1 at some row, across the layers, y as `panel_y` ("probability",
        "logprob" or "rank"). There is no panel without text, nor with remote=, whose traces bring back
        no hidden states to follow a column with."""
        from .export import render_png

        n = len(self.session.tokens.ids)
        if column is None and (n == 0 or isinstance(self.session, RemoteSession)):
            return render_png(self.grid_data(), path, scale=scale, panel_y=panel_y)
        return render_png(self.grid_data(n - 1 if column is None else column), path, scale=scale, panel_y=panel_y)

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write one self-contained HTML page of the widget as it is now: it opens offline, from
        file://, with no kernel; hover, statistics and computed rows work, the text is read-only."""
        from . import __version__
        from .page import page_html

        self._controller.whole()
        traits = {name: getattr(self, name) for name in VIEW_TRAITS}
        names = " vs ".join(self.session.names)
        short = self.text if len(self.text) <= 60 else self.text[:59] + "…"
        saved = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
        page = page_html(
            traits,
            title=f"lens-widget: {names}: {short}",
            caption=f"lens-widget snapshot of {names} ({self.lens} lens), saved {saved}. No kernel: hover a cell for "
            "its top tokens; the statistic buttons and the computed rows still work.",
            version=__version__,
        )
        out = Path(path)
        out.write_text(page, encoding="utf-8")
        return out
