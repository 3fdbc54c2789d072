"""Tab completion in the composer (members, rooms, emoji, commands), the mentions it
records, and who reacted shown under a selected message."""

from __future__ import annotations

from textual import events, on
from textual.app import App, ComposeResult
from textual.widgets import Input

from tui_client.engine.formatting import Pill
from tui_client.protocol.commands import COMMANDS
from tui_client.protocol.timeline import Reaction, TimelineItem
from tui_client.ui.completion import (
    Completion,
    MemberChoice,
    complete_command,
    complete_emoji,
    complete_member,
    complete_room,
)
from tui_client.ui.render import Palette, reacted_text, render_item
from tui_client.ui.widgets.composer import Composer

MEMBERS = [
    MemberChoice("@bob:example.org", "Bob", "Bob"),
    MemberChoice("@bobby:example.org", "Bobby", "Bobby"),
    MemberChoice("@alice:example.org", "Alice Bobson", "Alice Bobson"),
    MemberChoice("@me:example.org", "Me", "Me"),
    MemberChoice("@x1:example.org", "Twin", "Twin (@x1:example.org)"),
    MemberChoice("@x2:example.org", "Twin", "Twin (@x2:example.org)"),
    MemberChoice("@noname:example.org", None, "@noname:example.org"),
]
ROOMS = [("!r1:example.org", "#rust:example.org", "Rust"), ("!r2:example.org", None, "Rusty nails")]


def _provider(word: str) -> list[Completion]:
    if word.startswith("@"):
        return complete_member(word, MEMBERS, own_user_id="@me:example.org", may_mention_room=True)
    if word.startswith("#"):
        return complete_room(word, ROOMS)
    if word.startswith(":"):
        return complete_emoji(word)
    return complete_command(word, COMMANDS)


def test_members_by_name_then_later_words_ids_disambiguated_never_ourselves() -> None:
    found = complete_member("@bo", MEMBERS, own_user_id="@me:example.org")
    assert [c.insert for c in found] == ["Bob", "Bobby", "Alice Bobson"]
    assert [c.target for c in found] == [
        "@bob:example.org",
        "@bobby:example.org",
        "@alice:example.org",
    ]
    assert [c.insert for c in complete_member("@tw", MEMBERS)] == [
        "Twin (@x1:example.org)",
        "Twin (@x2:example.org)",
    ]
    assert [c.insert for c in complete_member("@nona", MEMBERS)] == ["@noname:example.org"]
    assert complete_member("@m", MEMBERS, own_user_id="@me:example.org") == []
    assert [c.insert for c in complete_member("@ro", MEMBERS, may_mention_room=True)] == ["@room"]
    assert complete_member("@ro", MEMBERS, may_mention_room=False) == []


def test_rooms_by_alias_or_name_emoji_by_shortcode_and_commands() -> None:
    assert [(c.insert, c.target) for c in complete_room("#ru", ROOMS)] == [
        ("#rust:example.org", "#rust:example.org"),
        ("!r2:example.org", "!r2:example.org"),
    ]
    assert [c.insert for c in complete_emoji(":thumbs_u")] == ["👍"]
    assert complete_emoji(":tada")[0].insert == "🎉"
    assert complete_emoji(":nothing_is_called_this") == []
    assert [c.insert for c in complete_command("/in", COMMANDS)] == ["/invite"]


class CompletingApp(App[None]):
    """A composer with the provider above, and an input to see where Tab moves focus."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, list[Pill]]] = []

    def compose(self) -> ComposeResult:
        yield Composer(id="composer", completions=_provider)
        yield Input(id="other")

    def on_mount(self) -> None:
        self.query_one(Composer).focus()

    @on(Composer.Submitted)
    def _sent(self, event: Composer.Submitted) -> None:
        self.sent.append((event.text, event.mentions))


async def test_tab_completes_cycles_and_the_mentions_travel_with_the_text() -> None:
    app = CompletingApp()
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        await pilot.press(*"hi @bo", "tab")
        assert composer.text == "hi Bob "
        await pilot.press("tab")
        assert composer.text == "hi Bobby "
        await pilot.press("tab")
        assert composer.text == "hi Alice Bobson "
        await pilot.press("tab")
        assert composer.text == "hi Bob "
        await pilot.press(*"and #ru", "tab", *":tad", "tab", "enter")
        assert app.sent == [
            (
                "hi Bob and #rust:example.org 🎉",
                [
                    Pill("Bob", "@bob:example.org", 3),
                    Pill("#rust:example.org", "#rust:example.org", 11),
                ],
            )
        ]
        assert composer.text == ""

        # A mention deleted before sending is not sent; commands complete at the start only.
        await pilot.press(*"@ali", "tab")
        assert composer.text == "Alice Bobson "
        composer.clear()
        await pilot.press(*"/inv", "tab")
        assert composer.text == "/invite "
        await pilot.press(*"x", "enter")
        assert app.sent[-1] == ("/invite x", [])
        assert composer.has_focus

        # Tab after an ordinary word still moves the focus on.
        await pilot.press(*"plain", "tab")
        assert app.query_one(Input).has_focus
        assert composer.text == "plain"


async def test_tab_in_a_burst_keeps_its_place_among_the_keys() -> None:
    app = CompletingApp()
    async with app.run_test() as pilot:
        for key in [*"@bo", "tab", *"hey", "enter"]:
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        for _ in range(100):
            await pilot.pause(0.02)
            if app.sent:
                break
        assert app.sent == [("Bob hey", [Pill("Bob", "@bob:example.org", 0)])]


def _item(reactions: tuple[Reaction, ...]) -> TimelineItem:
    return TimelineItem(
        key="$e", event_id="$e", txn_id=None, sender="@bob:example.org", ts=1_700_000_000_000,
        kind="text", body="hello", event_type="m.room.message", reactions=reactions,
    )  # fmt: skip


def test_a_selected_message_says_who_reacted() -> None:
    names = {
        "@bob:example.org": "Bob",
        "@carol:example.org": "Carol\x1b[31m",
        "@me:example.org": "Me",
    }
    item = _item(
        (
            Reaction("👍", 2, ("@bob:example.org", "@carol:example.org"), False),
            Reaction("🎉", 1, ("@me:example.org",), True),
        )
    )
    assert reacted_text(item, names.__getitem__) == "👍 Bob, Carol · 🎉 Me"

    def text(selected: bool) -> str:
        lines = render_item(item, None, names.__getitem__, 100, Palette(), selected=selected)
        return "\n".join("".join(segment.text for segment in line) for line in lines)

    assert "👍 Bob, Carol · 🎉 Me" in text(True)
    assert "Carol" not in text(False) and " 👍 2 " in text(False)
    many = _item((Reaction("👍", 7, tuple(f"@u{n}:x" for n in range(7)), False),))
    assert reacted_text(many, lambda user: user[1:3]) == "👍 u0, u1, u2, u3, u4 and 2 others"


async def test_a_mention_is_where_it_was_completed_and_moves_with_edits_before_it() -> None:
    app = CompletingApp()
    async with app.run_test() as pilot:
        composer = app.query_one(Composer)
        await pilot.press(*"ask @bo", "tab", *"or Bob")
        # Text typed before the mention moves it; the same name typed by hand is not one.
        await pilot.press("home", *"> ")
        assert composer.text == "> ask Bob or Bob"
        await pilot.press("enter")
        assert app.sent[-1] == ("> ask Bob or Bob", [Pill("Bob", "@bob:example.org", 6)])

        # An edit inside the completed name forgets it; the name typed again is plain text.
        await pilot.press(*"@bo", "tab", "backspace", "backspace", *"b ok")
        assert composer.text == "Bob ok"
        await pilot.press("enter")
        assert app.sent[-1] == ("Bob ok", [])

        # A line put back after a failure keeps its mention, before the new draft.
        await pilot.press(*"draft @bo", "tab")
        composer.restore("hi Bobby", [Pill("Bobby", "@bobby:example.org", 3)])
        await pilot.press("enter")
        assert app.sent[-1] == (
            "hi Bobby\ndraft Bob ",
            [Pill("Bobby", "@bobby:example.org", 3), Pill("Bob", "@bob:example.org", 15)],
        )
