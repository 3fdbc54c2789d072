"""Small modal dialogs: a text prompt, a confirmation, a choice, a reaction picker."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from ..bindings import CHOICE_BINDINGS, CONFIRM_BINDINGS, PROMPT_BINDINGS, REACTION_BINDINGS

#: The class of a dialog that says everything itself: no toast is drawn over it while it is
#: up (app.tcss hides the toasts on it; they come back when it closes).
UNCOVERED = "-uncovered"


class PromptDialog(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with it, or None on Escape (``uncovered``: no
    toast drawn over it, see :class:`ChoiceDialog`)."""

    BINDINGS = PROMPT_BINDINGS

    def __init__(
        self,
        title: str,
        placeholder: str = "",
        value: str = "",
        *,
        password: bool = False,
        uncovered: bool = False,
    ) -> None:
        super().__init__(classes=UNCOVERED if uncovered else None)
        self._title = title
        self._placeholder = placeholder
        self._value = value
        self._password = password

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self._title), classes="dialog-title")
            yield Input(
                value=self._value,
                placeholder=self._placeholder,
                password=self._password,
                id="prompt-input",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _accept(self) -> None:
        self.dismiss(self.query_one("#prompt-input", Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no."""

    BINDINGS = CONFIRM_BINDINGS

    def __init__(self, question: str, yes: str = "Yes", *, danger: bool = False) -> None:
        super().__init__()
        self._question = question
        self._yes = yes
        self._danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self._question), classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._yes, variant="error" if self._danger else "primary", id="yes")
                yield Button("Cancel", id="no")

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        """Confirm."""
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        """Decline."""
        self.dismiss(False)


class ChoiceDialog(ModalScreen[str | None]):
    """Pick one of a few choices (``(key, label)``); dismisses with the key, or None.

    ``uncovered``: no toast over it while it is up (a long question on a small terminal
    fills the middle of it, where the toasts of an error are drawn)."""

    BINDINGS = CHOICE_BINDINGS

    def __init__(
        self, question: str, choices: list[tuple[str, str]], *, uncovered: bool = False
    ) -> None:
        super().__init__(classes=UNCOVERED if uncovered else None)
        self._question = question
        self._choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self._question), classes="dialog-title")
            yield OptionList(
                *(Option(Text(label), id=key) for key, label in self._choices),
                markup=False,
                id="choices",
            )

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """No choice."""
        self.dismiss(None)


QUICK_REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "🙏")


class ReactionDialog(ModalScreen[str | None]):
    """Pick a reaction: a quick one with 1-8, or type any text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *REACTION_BINDINGS,
        *(
            Binding(str(n + 1), f"quick({n})", key, show=False)
            for n, key in enumerate(QUICK_REACTIONS)
        ),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("React with (1-8, or type and Enter)", classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                for n, key in enumerate(QUICK_REACTIONS):
                    yield Button(f"{n + 1} {key}", id=f"quick-{n}", classes="reaction")
            yield Input(placeholder="any emoji or text", id="reaction-input")

    def action_quick(self, index: int) -> None:
        """A quick reaction."""
        self.dismiss(QUICK_REACTIONS[index])

    @on(Button.Pressed, ".reaction")
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(QUICK_REACTIONS[int((event.button.id or "quick-0").split("-")[1])])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """No reaction."""
        self.dismiss(None)
