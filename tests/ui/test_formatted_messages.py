"""A formatted message from another user, through Synapse, as the timeline draws it."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from tests.ui.synapse_login import log_in
from tests.ui.test_flow import _join, _room, until
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.protocol.html import CodeBlock, Heading
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.timeline import TimelineView

HTML = (
    "<h2>Weekly notes</h2>\n"
    '<p>Thanks <a href="https://matrix.to/#/{alice}">alice</a>, read <a href="https://example.org/notes">the notes</a>'
    ' and <a href="javascript:alert(1)">this</a>.</p>\n'
    '<ol start="4">\n<li>fourth</li>\n<li>fifth<ul><li>inner</li></ul></li>\n</ol>\n'
    '<pre><code class="language-python">def answer():\n    return 42\n</code></pre>\n'
    "<blockquote><p>quoted</p><blockquote><p>deeper</p></blockquote></blockquote>\n"
    "<table><tr><th>who</th><th>n</th></tr><tr><td>bob</td><td>7</td></tr></table>\n"
    '<p>The end: <span data-mx-spoiler="plot">the butler did it</span>'
    "<script>evil()</script>\x1b]0;title\x07\u202eok</p>"
)


def _send_html(
    synapse: SynapseServer, user: RegisteredUser, room_id: str, body: str, html: str
) -> None:
    path = (
        f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/send/m.room.message/fmt1"
    )
    content = {
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    }
    status, answer = synapse.request_json("PUT", path, content, user.access_token)
    assert status == 200, answer


def _rendered(timeline: TimelineView, key: str) -> list[str]:
    index = next(n for n, item in enumerate(timeline.items) if item.key == key)
    return [strip.text for strip in timeline._strips_for(index, timeline._layout_width or 100)]


def _links(timeline: TimelineView, key: str) -> set[str]:
    index = next(n for n, item in enumerate(timeline.items) if item.key == key)
    strips = timeline._strips_for(index, timeline._layout_width or 100)
    return {
        seg.style.link
        for strip in strips
        for seg in strip
        if seg.style is not None and seg.style.link
    }


async def test_formatted_message_from_another_user_is_drawn_rich_and_safe(
    synapse: SynapseServer, make_user: Callable[..., RegisteredUser], tmp_path: Path
) -> None:
    alice = make_user("alice", displayname="Alice Liddell")
    bob = make_user("bob", displayname="Bob")
    room = _room(synapse, bob, "Formatted", [alice.user_id])
    _join(synapse, alice, room)
    _send_html(synapse, bob, room, "Weekly notes (plain)", HTML.format(alice=alice.user_id))

    app = TuiClientApp(base_dir=tmp_path)
    async with app.run_test(size=(110, 50)) as pilot:
        screen = await log_in(pilot, app, alice, synapse)
        await until(pilot, lambda: app.client is not None and room in app.client.rooms, "the room")
        screen.open_room(room)
        timeline = screen.query_one(TimelineView)
        await until(
            pilot,
            lambda: any(i.formatted is not None for i in timeline.items),
            "the formatted message",
        )
        item = next(i for i in timeline.items if i.formatted is not None)
        assert item.body == "Weekly notes (plain)"
        assert isinstance(item.formatted.blocks[0], Heading)
        assert any(
            isinstance(b, CodeBlock) and b.language == "python" for b in item.formatted.blocks
        )

        # The pill reads with the member's current name once the room's members are known
        # (they may arrive after the message on a loaded machine).
        await until(
            pilot,
            lambda: "@Alice Liddell" in "\n".join(_rendered(timeline, item.key)),
            "the pill with Alice's name",
        )
        lines = [line.rstrip() for line in _rendered(timeline, item.key)]
        text = "\n".join(lines)
        assert "Weekly notes" in text and "Weekly notes (plain)" not in text
        # the pill reads with the member's current name; the link keeps its text and shows its URL
        assert "@Alice Liddell" in text
        assert "the notes" in text and "<https://example.org/notes>" in text
        assert "javascript" not in text and "evil()" not in text
        # list numbers from start=4, nested bullet indented under them
        assert any(line.lstrip().startswith("4. fourth") for line in lines)
        fifth = next(n for n, line in enumerate(lines) if "5. fifth" in line)
        assert lines[fifth + 1].index("◦ inner") > lines[fifth].index("5.")
        assert any("def answer():" in line for line in lines)
        assert any("│ │ deeper" in line for line in lines)
        assert any("who │ n" in line for line in lines)
        # the spoiler is blanked, with its reason, until revealed
        assert "spoiler: plot" in text and "butler" not in text
        for forbidden in ("\x1b", "\x07", "\u202e"):
            assert forbidden not in text
        assert _links(timeline, item.key) == {
            f"https://matrix.to/#/{alice.user_id}",
            "https://example.org/notes",
        }

        # select the message and reveal its spoiler with v
        timeline.focus()
        timeline.selected_key = item.key
        await pilot.pause()
        await pilot.press("v")
        assert item.key in timeline.revealed, (app.focused, timeline.selected_key, item.key)
        await until(
            pilot,
            lambda: "butler" in "\n".join(_rendered(timeline, item.key)),
            "the revealed spoiler",
        )
        await pilot.press("v")
        await until(
            pilot,
            lambda: "butler" not in "\n".join(_rendered(timeline, item.key)),
            "hidden again",
        )
