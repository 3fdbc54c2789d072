"""Desktop notifications by terminal escape (ui/notify.py): the escape per terminal, tmux's
passthrough, hostile names and bodies kept to plain text, when the notifier speaks, and
its settings from the palette."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandList, CommandPalette

from tui_client.engine.alert_settings import (
    MODE_BELL,
    MODE_DESKTOP,
    MODE_OFF,
    MODE_SETTING,
    TEXT_ALWAYS,
    TEXT_NEVER,
    TEXT_SETTING,
    AlertSettings,
)
from tui_client.engine.updates import PushNotification
from tui_client.ui.app import TuiClientApp
from tui_client.ui.notify import (
    BELL,
    BODY_LENGTH,
    OSC9,
    OSC99,
    OSC777,
    TITLE_LENGTH,
    Notifier,
    Screen,
    build_escape,
    clean_field,
    terminal_kind,
    tmux_wrap,
)

from .fake_world import FakeHomeserver
from .test_snapshots import wait_for
from .test_untrusted_text import EVIL_BODY, EVIL_DISPLAYNAME, EVIL_NAME, EVIL_TOPIC

HOSTILE = [
    EVIL_NAME,
    EVIL_TOPIC,
    EVIL_DISPLAYNAME,
    EVIL_BODY,
    "a;b;c\x07d\x1b\\e\x9cf\x9d0;c1 title\x9c",
    "\x1bPtmux;\x1b\x1b]777;notify;x;y\x1b\x1b\\\x1b\\",
    "line\nbreak\rreturn\u2028sep\x00nul\x7fdel",
    "x" * 5000,
]
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("environ", "kind"),
    [
        ({"TERM": "xterm-kitty"}, OSC99),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "3"}, OSC99),
        ({"TERM_PROGRAM": "iTerm.app"}, OSC9),
        ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm2"}, OSC9),  # over SSH
        ({"WT_SESSION": "b2f1"}, OSC9),
        ({"ConEmuPID": "77"}, OSC9),
        ({"TERM_PROGRAM": "WezTerm"}, OSC777),
        ({"TERM_PROGRAM": "tmux", "WEZTERM_PANE": "0"}, OSC777),
        ({"TERM_PROGRAM": "ghostty"}, OSC777),
        ({"TERM": "xterm-ghostty"}, OSC777),
        ({"TERM": "foot"}, OSC777),
        ({"TERM": "rxvt-unicode-256color"}, OSC777),
        ({"TERM": "xterm-256color"}, BELL),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": ""}, BELL),
        ({"TERM": "xterm-kitty", "TUI_CLIENT_NOTIFY_ESCAPE": "osc777"}, OSC777),
        ({"TERM": "xterm-kitty", "TUI_CLIENT_NOTIFY_ESCAPE": "bell"}, BELL),
    ],
)
def test_the_escape_follows_the_terminal(environ: dict[str, str], kind: str) -> None:
    assert terminal_kind(environ) == kind


def test_escapes_per_terminal() -> None:
    assert build_escape(OSC777, "Lobby", "Bob: lunch?") == "\x1b]777;notify;Lobby;Bob: lunch?\x1b\\"
    assert build_escape(OSC9, "Lobby", "Bob: lunch?") == "\x1b]9;Lobby: Bob: lunch?\x1b\\"
    assert build_escape(OSC99, "Lobby", "Bob: lunch?", ident="tc7") == (
        "\x1b]99;i=tc7:d=0:p=title;Lobby\x1b\\\x1b]99;i=tc7:d=1:p=body;Bob: lunch?\x1b\\"
    )
    assert build_escape(BELL, "Lobby", "Bob") == ""


def test_tmux_passthrough_doubles_every_escape() -> None:
    inner = build_escape(OSC777, "Lobby", "Bob: hi")
    wrapped = tmux_wrap(inner)
    assert wrapped == "\x1bPtmux;\x1b\x1b]777;notify;Lobby;Bob: hi\x1b\x1b\\\x1b\\"
    payload = wrapped[len("\x1bPtmux;") : -2]
    assert re.fullmatch(r"(?:[^\x1b]|\x1b\x1b)*", payload)
    assert payload.replace("\x1b\x1b", "\x1b") == inner
    kitty = build_escape(OSC99, "a", "b")
    assert tmux_wrap(kitty)[len("\x1bPtmux;") : -2].replace("\x1b\x1b", "\x1b") == kitty


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("kind", [OSC777, OSC9, OSC99])
@pytest.mark.parametrize("tmux", [False, True], ids=["plain", "tmux"])
def test_hostile_names_and_bodies_stay_text(hostile: str, kind: str, tmux: bool) -> None:
    sequence = build_escape(kind, hostile, hostile, ident="a;\x1b]b")
    if tmux:
        sequence = tmux_wrap(sequence)
        assert sequence.startswith("\x1bPtmux;") and sequence.endswith("\x1b\\")
        sequence = sequence[len("\x1bPtmux;") : -2].replace("\x1b\x1b", "\x1b")
    # Exactly the escapes we build, each ended by ST; between them, text with no control.
    if kind == OSC777:
        match = re.fullmatch(r"\x1b\]777;notify;([^;]*);([^;]*)\x1b\\", sequence, re.S)
        fields = list(match.groups()) if match else []
    elif kind == OSC9:
        match = re.fullmatch(r"\x1b\]9;([^;]*)\x1b\\", sequence, re.S)
        fields = list(match.groups()) if match else []
    else:
        match = re.fullmatch(
            r"\x1b\]99;i=ab:d=0:p=title;([^;]*)\x1b\\\x1b\]99;i=ab:d=1:p=body;([^;]*)\x1b\\",
            sequence,
            re.S,
        )
        fields = list(match.groups()) if match else []
    assert fields, repr(sequence)
    for field in fields:
        assert not CONTROL.search(field), repr(field)
        assert "\u202e" not in field and "\u2028" not in field
        assert len(field) <= TITLE_LENGTH + BODY_LENGTH + 2
    assert "pwned" not in sequence and "?1049h" not in sequence and "[2J" not in sequence


def test_fields_are_bounded_and_one_line() -> None:
    assert clean_field("x" * 500, TITLE_LENGTH) == "x" * (TITLE_LENGTH - 1) + "…"
    assert clean_field("two\nlines;\tand \x1b[31mred", 80) == "two lines, and red"
    assert clean_field(EVIL_NAME, 80) == "[@click=app.quit]Evil[/] room"


# -- when the notifier speaks ---------------------------------------------------------------


def notification(room: str = "!lobby:x", **changes: Any) -> PushNotification:
    values: dict[str, Any] = {
        "room_id": room,
        "event_id": "$e1",
        "sender": "@bob:x",
        "sender_name": "Bob",
        "room_name": "Lobby",
        "body": "lunch?",
        "highlight": True,
        "sound": None,
        "encrypted": False,
        "is_dm": False,
    }
    values.update(changes)
    return PushNotification(**values)


class Harness:
    def __init__(
        self,
        environ: dict[str, str],
        *,
        focused: bool = True,
        room: str | None = "!other:x",
        mode: str = MODE_DESKTOP,
        dbus: Callable[..., None] | None = None,
    ) -> None:
        self.settings = AlertSettings(None, None)  # type: ignore[arg-type]
        self.settings.mode = mode
        self.screen = Screen(focused, room)
        self.written: list[str] = []
        self.rings = 0
        self.dbus_calls: list[tuple[str, str, dict[str, bool]]] = []

        def record_dbus(title: str, body: str, **options: bool) -> None:
            self.dbus_calls.append((title, body, options))

        self.now = 0.0
        self.notifier = Notifier(
            lambda: self.settings,
            lambda: self.screen,
            self.written.append,
            self.ring,
            environ=environ,
            dbus=dbus or record_dbus,
            clock=lambda: self.now,
        )

    def ring(self) -> None:
        self.rings += 1


WEZTERM = {"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}


def test_unfocused_or_elsewhere_notifies_and_the_room_on_screen_does_not() -> None:
    h = Harness(WEZTERM, focused=True, room="!lobby:x")
    h.notifier.handle(notification())
    assert h.written == [] and h.rings == 0
    h.screen = Screen(False, "!lobby:x")
    h.notifier.handle(notification())
    assert h.written == ["\x1b]777;notify;Lobby;Bob: lunch?\x1b\\"] and h.rings == 0
    h.screen = Screen(True, "!other:x")
    h.notifier.handle(notification(sound="default"))
    assert len(h.written) == 2 and h.rings == 1  # the rule's sound: the bell too
    h.notifier.handle(object())  # anything else: nothing
    assert len(h.written) == 2


def test_tmux_unknown_terminal_off_and_bell_modes() -> None:
    h = Harness({**WEZTERM, "TMUX": "/tmp/tmux-1000/default,1,0"})
    h.notifier.handle(notification())
    assert h.written == ["\x1bPtmux;\x1b\x1b]777;notify;Lobby;Bob: lunch?\x1b\x1b\\\x1b\\"]
    unknown = Harness({"TERM": "xterm-256color"})
    unknown.notifier.handle(notification())
    assert unknown.written == [] and unknown.rings == 1
    off = Harness(WEZTERM, mode=MODE_OFF)
    off.notifier.handle(notification())
    assert off.written == [] and off.rings == 0
    bell = Harness(WEZTERM, mode=MODE_BELL)
    bell.notifier.handle(notification())
    assert bell.written == [] and bell.rings == 1


def test_the_text_is_shown_as_the_user_chose() -> None:
    h = Harness(WEZTERM)
    h.notifier.handle(notification(encrypted=True, highlight=True))  # default: not encrypted ones
    h.notifier.handle(notification(encrypted=True, highlight=False))
    h.settings.text = TEXT_ALWAYS
    h.notifier.handle(notification(encrypted=True))
    h.settings.text = TEXT_NEVER
    h.notifier.handle(notification(encrypted=False))
    h.notifier.handle(notification(is_dm=True, room_name="Bob", body="psst"))
    assert h.written == [
        "\x1b]777;notify;Lobby;Bob: mentioned you\x1b\\",
        "\x1b]777;notify;Lobby;Bob: sent a message\x1b\\",
        "\x1b]777;notify;Lobby;Bob: lunch?\x1b\\",
        "\x1b]777;notify;Lobby;Bob: mentioned you\x1b\\",
        "\x1b]777;notify;Bob;mentioned you\x1b\\",
    ]


def test_a_burst_is_cut_short() -> None:
    h = Harness(WEZTERM)
    for _ in range(12):
        h.notifier.handle(notification())
    assert len(h.written) == 5
    h.now = 11.0
    h.notifier.handle(notification())
    assert len(h.written) == 6


async def test_a_local_session_bus_is_used_and_ssh_or_a_failure_uses_the_terminal() -> None:
    local = {**WEZTERM, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}
    h = Harness(local)
    h.notifier.handle(notification(sound="default"))
    for _ in range(100):
        if h.dbus_calls:
            break
        await asyncio.sleep(0.01)
    assert h.dbus_calls == [("Lobby", "Bob: lunch?", {"urgent": True, "sound": True})]
    assert h.written == [] and h.rings == 0

    remote = Harness({**local, "SSH_CONNECTION": "10.0.0.2 5000 10.0.0.1 22"})
    remote.notifier.handle(notification())
    assert remote.written == ["\x1b]777;notify;Lobby;Bob: lunch?\x1b\\"] and remote.dbus_calls == []

    def broken(title: str, body: str, **options: bool) -> None:
        raise OSError("no notification daemon")

    failing = Harness(local, dbus=broken)
    failing.notifier.handle(notification())
    for _ in range(100):
        if failing.written:
            break
        await asyncio.sleep(0.01)
    assert failing.written == ["\x1b]777;notify;Lobby;Bob: lunch?\x1b\\"]


# -- the settings from the palette ------------------------------------------------------------


async def test_the_palette_sets_alerts_and_their_text_kept_in_the_cache(fake_profile: Path) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.chat_screen is not None and app.is_connected, "the chat")
        client = app.client
        assert client is not None
        alerts = client.notifications.alerts
        assert (alerts.mode, alerts.text) == (MODE_DESKTOP, "unencrypted")
        for entry, check in (
            ("Alerts: bell only", lambda: alerts.mode == MODE_BELL),
            ("Alert text: never", lambda: alerts.text == TEXT_NEVER),
        ):
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
            await pilot.press(*entry)
            await wait_for(
                pilot, lambda: app.screen.query_one(CommandList).highlighted is not None, "results"
            )
            await pilot.press("enter")
            await wait_for(pilot, check, entry)
            await wait_for(
                pilot, lambda e=entry: any(n.message == f"{e}." for n in app._notifications), "said"
            )
        assert client.db.call(client.cache.get_meta, MODE_SETTING) == MODE_BELL
        assert client.db.call(client.cache.get_meta, TEXT_SETTING) == TEXT_NEVER


def test_with_several_accounts_the_title_names_the_account() -> None:
    h = Harness(WEZTERM)
    named: list[str | None] = ["@me:example.org"]
    h.notifier = Notifier(
        lambda: h.settings,
        lambda: h.screen,
        h.written.append,
        h.ring,
        environ=WEZTERM,
        clock=lambda: h.now,
        account=lambda: named[0],
    )
    h.notifier.handle(notification())
    assert h.written == ["\x1b]777;notify;Lobby (@me:example.org);Bob: lunch?\x1b\\"]
    named[0] = None  # one account: no name
    h.now = 100.0
    h.notifier.handle(notification())
    assert h.written[-1] == "\x1b]777;notify;Lobby;Bob: lunch?\x1b\\"
