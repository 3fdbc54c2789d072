"""The invite bar above the composer: who invited the user, with Accept and Reject.

Hidden until an invited room is opened, so the chat screen mounts it then
(:meth:`~..screens.chat_updates.ChatUpdates.invite_bar`): its Buttons' stylesheet is not
parsed nor styled before the first paint (issue 13). Its children are made here, not in a
``compose``, so :meth:`show` works on a bar that is mounted but not yet composed."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Button, Static


class InviteBar(Horizontal):
    """``#invite-bar``: ``#invite-text``, ``#accept-invite``, ``#reject-invite``."""

    def __init__(self) -> None:
        self._text = Static(id="invite-text")
        super().__init__(
            self._text,
            Button("Accept", variant="primary", id="accept-invite"),
            Button("Reject", variant="error", id="reject-invite"),
            id="invite-bar",
        )

    def show(self, text: Text) -> None:
        """Say who invited the user to which room."""
        self._text.update(text)
