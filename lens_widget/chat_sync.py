"""A chat widget's `messages`, `text` and `roles` traits, kept in step.

Two directions, never mixed:
- `messages` set from Python is rendered with the tokenizer's chat template (chat.py) and becomes
  the widget's `text` (which the controller analyses from the first changed token, as for typing)
  and its `roles`.
- Any other change of the text (typing in a view, `text` set from Python, generation appending to
  it) is taken as an edit of the conversation: the roles are carried through it (a message edited
  inside stays that message; text appended after an open assistant message is the assistant's), and
  `messages` follows, each content read from its range, without rendering the template again: what
  the person typed is what the model reads.
A widget with no roles (no conversation set) is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import chat

if TYPE_CHECKING:
    from .widget import LensWidget


class ChatSync:
    def __init__(self, widget: LensWidget, tokenizer: Any, add_generation_prompt: bool = True) -> None:
        self.widget = widget
        self.tokenizer = tokenizer
        self.add_generation_prompt = add_generation_prompt
        """Whether a conversation set as `messages` is rendered with the template's assistant header
        at its end (the model's turn next)."""
        self._specials = chat.special_tokens(tokenizer)
        self._own = False
        """Set while this class writes the traits it observes."""
        widget.observe(self._on_messages, names="messages")
        widget.observe(self._on_text, names="text")

    def render(self, messages: list[dict[str, Any]]) -> chat.Transcript:
        """The conversation as this widget renders it (fails before anything changes)."""
        return chat.render(self.tokenizer, messages, add_generation_prompt=self.add_generation_prompt)

    def show(self, messages: list[dict[str, Any]], transcript: chat.Transcript) -> None:
        """Make a rendered conversation the widget's: messages, roles and the text (analysed), in one
        message to the views."""
        with self.widget.hold_sync(), self._writing():
            self.widget.messages = messages
            self.widget.roles = transcript.roles
            self.widget.text = transcript.text

    def open_assistant_turn(self) -> None:
        """Before generating: the conversation rendered to end inside an assistant message
        (chat.open_assistant_turn), so that what the model writes is that message's. The text changes
        only where the template's open turn differs from what is shown (a closed assistant message,
        no generation prompt); nothing happens with no conversation."""
        if not self.widget.messages:
            return
        messages = chat.with_assistant_turn(self.widget.messages)
        self.show(messages, chat.open_assistant_turn(self.tokenizer, messages))

    def _on_messages(self, change: Any) -> None:
        if self._own:
            return
        if not change["new"]:  # no conversation: the text stays as it is, with no roles
            with self._writing():
                self.widget.roles = []
            return
        try:
            transcript = self.render(change["new"])
        except Exception:
            with self._writing():
                self.widget.messages = change["old"]  # the conversation stays the one shown
            raise
        self.show(change["new"], transcript)

    def _on_text(self, change: Any) -> None:
        if self._own or not self.widget.roles:
            return
        old, new = change["old"], change["new"]
        roles = chat.carry_roles(self.widget.roles, old, new, self._specials)
        with self.widget.hold_sync(), self._writing():
            self.widget.roles = roles
            self.widget.messages = chat.following(self.widget.messages, roles, new)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """While it is open, this class's observers ignore the changes it makes itself."""
        was, self._own = self._own, True
        try:
            yield
        finally:
            self._own = was
