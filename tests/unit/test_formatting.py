"""Composer text to message content: markdown to Matrix HTML, pills, m.mentions, edits."""

from __future__ import annotations

import pytest

from tui_client.engine.formatting import (
    HTML_FORMAT,
    Pill,
    edit_content,
    html_to_plain,
    markdown_to_html,
    mentioned_user_ids,
    message_content,
    pill_url,
    pills_in,
    pills_of,
    place_pills,
    shift_pills,
)
from tui_client.protocol.commands import COMMANDS, MESSAGE_COMMANDS, parse_command

BOB = Pill("Bob", "@bob:example.org")


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "hello world.",
        "two\nlines",
        "two\n\nparagraphs",
        "a < b & c > d",
        "snake_case_name",
        "  padded  ",
        "x@room",
    ],
)
def test_plain_text_sends_no_formatted_body(text: str) -> None:
    content = message_content(text)
    assert content == {"msgtype": "m.text", "body": text, "m.mentions": {}}


def test_emphasis_strong_strikethrough_and_code() -> None:
    assert (
        markdown_to_html("*it* **bold** ~~gone~~ `x<y`")
        == "<em>it</em> <strong>bold</strong> <s>gone</s> <code>x&lt;y</code>"
    )


def test_a_code_block_keeps_its_language_and_escapes_its_text() -> None:
    html = markdown_to_html("```python\nif a < b:\n    print('<b>')\n```")
    assert (
        html
        == "<pre><code class=\"language-python\">if a &lt; b:\n    print('&lt;b&gt;')\n</code></pre>"
    )


def test_lists_ordered_with_start_and_nested() -> None:
    assert markdown_to_html("- one\n- two") == "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"
    assert markdown_to_html("3. c\n4. d") == '<ol start="3">\n<li>c</li>\n<li>d</li>\n</ol>'
    nested = markdown_to_html("- a\n  - b")
    assert nested is not None and nested.count("<ul>") == 2


def test_links_autolinks_and_headings_and_quotes() -> None:
    assert (
        markdown_to_html("[site](https://example.org)") == '<a href="https://example.org">site</a>'
    )
    assert markdown_to_html("see https://example.org/x?y=1 now") == (
        'see <a href="https://example.org/x?y=1">https://example.org/x?y=1</a> now'
    )
    assert markdown_to_html("# Title") == "<h1>Title</h1>"
    assert markdown_to_html("> quoted") == "<blockquote>\n<p>quoted</p>\n</blockquote>"


def test_line_breaks_inside_formatted_text_are_kept() -> None:
    assert markdown_to_html("**a**\nb") == "<strong>a</strong><br />\nb"


def test_typed_html_is_escaped_not_passed_through() -> None:
    # Only text: it goes as plain body, with no HTML at all.
    assert message_content("<script>alert(1)</script>") == {
        "msgtype": "m.text",
        "body": "<script>alert(1)</script>",
        "m.mentions": {},
    }
    html = markdown_to_html('**hi** <img src=x onerror="alert(1)"> <a href="javascript:x">y</a>')
    assert html is not None
    assert "<img" not in html and "<a" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_unsafe_link_targets_and_foreign_images_are_not_sent() -> None:
    assert markdown_to_html("[x](javascript:alert(1))") is None  # left as the text it was
    assert (
        markdown_to_html("![cat](https://example.org/cat.png)")
        == '<a href="https://example.org/cat.png">cat</a>'
    )
    assert (
        markdown_to_html("![cat](mxc://example.org/abc)")
        == '<img src="mxc://example.org/abc" alt="cat">'
    )


def test_a_completed_mention_is_a_pill_and_listed_in_m_mentions() -> None:
    content = message_content("hi Bob, see *this*", pills=[BOB], own_user_id="@me:example.org")
    assert content["body"] == "hi Bob, see *this*"
    assert content["format"] == HTML_FORMAT
    assert (
        content["formatted_body"]
        == 'hi <a href="https://matrix.to/#/@bob:example.org">Bob</a>, see <em>this</em>'
    )
    assert content["m.mentions"] == {"user_ids": ["@bob:example.org"]}


def test_a_pill_alone_makes_a_formatted_body_and_names_are_not_markdown() -> None:
    content = message_content(
        "ping _under_score_ ok", pills=[Pill("_under_score_", "@u:example.org")]
    )
    assert (
        content["formatted_body"]
        == 'ping <a href="https://matrix.to/#/@u:example.org">_under_score_</a> ok'
    )
    hostile = message_content("hey <b>x</b>", pills=[Pill("<b>x</b>", "@x:example.org")])
    assert (
        hostile["formatted_body"]
        == 'hey <a href="https://matrix.to/#/@x:example.org">&lt;b&gt;x&lt;/b&gt;</a>'
    )


def test_room_pills_escape_the_alias_hash_and_are_not_user_mentions() -> None:
    assert pill_url("#rust:example.org") == "https://matrix.to/#/%23rust:example.org"
    content = message_content(
        "join #rust:example.org", pills=[Pill("#rust:example.org", "#rust:example.org")]
    )
    assert (
        content["formatted_body"]
        == 'join <a href="https://matrix.to/#/%23rust:example.org">#rust:example.org</a>'
    )
    assert content["m.mentions"] == {}


def test_we_never_mention_ourselves_and_each_user_once() -> None:
    me = Pill("Me", "@me:example.org")
    content = message_content("Me and Bob and Bob", pills=[me, BOB], own_user_id="@me:example.org")
    assert content["m.mentions"] == {"user_ids": ["@bob:example.org"]}


def test_at_room_only_with_the_power_to_notify_the_room() -> None:
    assert message_content("@room lunch", may_mention_room=True)["m.mentions"] == {"room": True}
    assert message_content("@room lunch", may_mention_room=False)["m.mentions"] == {}
    assert message_content("mail me@room.org", may_mention_room=True)["m.mentions"] == {}


def test_plain_and_emote() -> None:
    assert message_content("**not bold**", markdown=False) == {
        "msgtype": "m.text",
        "body": "**not bold**",
        "m.mentions": {},
    }
    emote = message_content("waves *hard*", msgtype="m.emote")
    assert emote["msgtype"] == "m.emote" and emote["formatted_body"] == "waves <em>hard</em>"


def test_an_edit_has_both_bodies_inside_and_the_star_fallback_outside() -> None:
    original = message_content("hi Bob", pills=[BOB])
    new = message_content("hi **Bob** and Carol", pills=[BOB, Pill("Carol", "@carol:example.org")])
    content = edit_content("$orig", new, original)
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$orig"}
    assert content["m.new_content"] == new
    assert content["m.new_content"]["formatted_body"].startswith(
        'hi <strong><a href="https://matrix.to/#/@bob:example.org">'
    )
    assert content["body"] == "* hi **Bob** and Carol"
    assert content["formatted_body"] == "* " + new["formatted_body"]
    assert content["format"] == HTML_FORMAT
    # Only the newly mentioned user is notified by the edit.
    assert content["m.mentions"] == {"user_ids": ["@carol:example.org"]}
    plain_edit = edit_content("$orig", message_content("fixed"))
    assert "formatted_body" not in plain_edit and plain_edit["body"] == "* fixed"
    assert plain_edit["m.mentions"] == {}


def test_mentions_are_read_from_any_matrix_to_user_link() -> None:
    html = '<a href="https://matrix.to/#/%40alice%3Aexample.org">A</a> <a href="https://matrix.to/#/!room:x">r</a> <a href="https://example.org">e</a>'
    assert mentioned_user_ids(html) == ["@alice:example.org"]


def test_html_to_plain_for_raw_html_messages() -> None:
    assert html_to_plain("<p>one<br>two</p><ul><li>a</li><li>b</li></ul>") == "one\ntwo\n- a\n- b"
    assert html_to_plain("<h1>Title</h1> <b>x</b>") == "Title\nx"
    assert html_to_plain("<mx-reply>old quote</mx-reply>new &amp; <b>bold</b>") == "new & bold"


def test_html_is_a_message_command() -> None:
    assert "html" in COMMANDS and "html" in MESSAGE_COMMANDS
    command = parse_command("/html <b>hi</b>")
    assert command is not None and command.name == "html" and command.argument == "<b>hi</b>"


def test_the_pills_of_a_sent_message_come_back_for_an_edit() -> None:
    content = message_content(
        "hi Bob and #rust:example.org", pills=[BOB, Pill("#rust:example.org", "#rust:example.org")]
    )
    assert pills_of(content["formatted_body"]) == [
        BOB,
        Pill("#rust:example.org", "#rust:example.org"),
    ]
    assert (
        pills_of('<a href="https://example.org">x</a> <a href="https://matrix.to/#/@a:x"></a>')
        == []
    )


def test_only_the_completed_occurrence_is_a_pill_never_the_same_words_elsewhere() -> None:
    text = "Bob: ask Bob"
    bob_second = Pill("Bob", "@bob:example.org", text.rindex("Bob"))
    html = markdown_to_html(text, [bob_second])
    assert html == 'Bob: ask <a href="https://matrix.to/#/@bob:example.org">Bob</a>'
    # The name typed again inside code (a span or a block) stays code.
    text = "hi Bob, run `Bob --help`\n\n```\nBob\n```"
    content = message_content(text, pills=[Pill("Bob", "@bob:example.org", 3)])
    assert content["formatted_body"] == (
        '<p>hi <a href="https://matrix.to/#/@bob:example.org">Bob</a>, run <code>Bob --help</code></p>\n'
        "<pre><code>Bob\n</code></pre>"
    )
    assert content["m.mentions"] == {"user_ids": ["@bob:example.org"]}


def test_a_mention_completed_inside_code_or_a_link_is_not_a_link() -> None:
    for text, start in [
        ("`see Bob`", 5),
        ("```\nBob\n```", 4),
        ("    Bob", 4),
        ("[Bob](https://x.org)", 1),
    ]:
        assert text[start : start + 3] == "Bob"
        content = message_content(text, pills=[Pill("Bob", "@bob:example.org", start)])
        assert "matrix.to" not in content.get("formatted_body", ""), text
        assert content["m.mentions"] == {}, text
    # Nothing else mentioned: no HTML is sent for what is only the text.
    assert (
        message_content("see Bob", pills=[Pill("Bob", "@bob:example.org", 0)])["m.mentions"] == {}
    )


def test_a_pill_whose_text_has_moved_is_not_sent_and_commands_move_pills_back() -> None:
    assert pills_in("hi Bob", [Pill("Bob", "@b:x", 0), Pill("Bob", "@b:x", 3)]) == [
        Pill("Bob", "@b:x", 3)
    ]
    assert shift_pills([Pill("Bob", "@b:x", 4), Pill("Me", "@m:x", 1)], 4) == [
        Pill("Bob", "@b:x", 0)
    ]
    assert place_pills("Bob and Bob", [BOB, BOB]) == [
        Pill("Bob", BOB.target, 0),
        Pill("Bob", BOB.target, 8),
    ]
    # Characters that are our placeholders cannot be typed into a pill.
    text = "x\ue000 Bob"
    assert markdown_to_html(text, [Pill("Bob", "@bob:example.org", 3)]) == (
        'x <a href="https://matrix.to/#/@bob:example.org">Bob</a>'
    )


def test_typed_control_characters_and_escapes_are_not_sent() -> None:
    text = (
        "a\x07b\x1b[31mred\x1b[0m \x9b2J Bob\x00 **x\x7f**\r\nnext\tend \x1b]8;;http://evil\x07link"
    )
    bob = Pill("Bob", "@bob:example.org", text.index("Bob"))
    content = message_content(text, pills=[bob])
    assert content["body"] == "abred 2J Bob **x**\nnext\tend link"
    assert content["formatted_body"] == (
        'abred 2J <a href="https://matrix.to/#/@bob:example.org">Bob</a> <strong>x</strong><br />\n'
        "next\tend link"
    )
    assert content["m.mentions"] == {"user_ids": ["@bob:example.org"]}
    raw = message_content("x", formatted_body="<b>x\x1b[2J\x9c</b>")
    assert raw["formatted_body"] == "<b>x</b>"
    edit = edit_content("$e", message_content("fixed\x1b[H\x00 *now*"))
    assert edit["m.new_content"]["body"] == "fixed *now*" and edit["body"] == "* fixed *now*"
    assert (
        "\x1b" not in edit["formatted_body"]
        and "\x00" not in edit["m.new_content"]["formatted_body"]
    )
