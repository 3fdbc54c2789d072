"""Textual's parsed stylesheet rules are kept between starts (ui/css_cache.py, issue 13): the
app started with the table filled by an earlier start parses nothing, and its rules, its
screen and its theme switch are what Textual's own parse gives. At 80x24."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.css.model import RuleSet
from textual.css.stylesheet import Stylesheet
from textual.layout import Layout

from tui_client.ui import css_cache
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.key_footer import KeyFooter
from tui_client.ui.widgets.room_list import RoomList
from tui_client.ui.widgets.status_bar import StatusBar

from .fake_world import FakeHomeserver, make_profile
from .test_snapshots import show_general, wait_for

#: A parse's arguments (``Stylesheet._parse_rules``) and the variables it was made with.
Source = tuple[str, tuple[str, str], bool, int, str, tuple[tuple[str, str], ...]]


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cache" / "css-rules.bin"
    yield path
    css_cache.uninstall()


def _normal(rules: list[RuleSet]) -> list[Any]:
    """What a rule set is, comparable: a layout is a new object at each parse (compared by
    its class), sets compare as sets; the Styles' lookups must read its own rules, and the
    rule sets that share one Styles (nested rules) share it alike."""
    shared = {id(rule.styles): index for index, rule in reversed(list(enumerate(rules)))}
    out = []
    for rule in rules:
        styles = rule.styles
        assert styles.get_rule.__self__ is styles._rules  # type: ignore[attr-defined]
        assert styles.has_rule.__self__ is styles._rules  # type: ignore[attr-defined]
        values = {
            name: type(value).__name__ if isinstance(value, Layout) else value
            for name, value in styles._rules.items()
        }
        out.append(
            (
                rule.selectors,
                rule.selector_set,
                values,
                styles.important,
                styles.node,
                rule.errors,
                rule.is_default_rules,
                rule.tie_breaker,
                rule.selector_names,
                rule.pseudo_classes,
                shared[id(styles)],
            )
        )
    return out


def _screen(app: Any) -> list[list[tuple[str, str]]]:
    """Every cell run of the screen: its text and its style (colours, bold...)."""
    return [
        [(segment.text, str(segment.style)) for segment in strip]
        for strip in app.screen._compositor.render_strips()
    ]


def _styles(app: Any) -> list[Any]:
    chat = app.chat_screen
    out = []
    for widget in (chat.query_one(RoomList), chat.query_one(StatusBar), chat.query_one(KeyFooter)):
        styles = widget.styles
        out.append(
            (
                styles.background,
                styles.color,
                styles.width,
                styles.height,
                styles.dock,
                widget.region,
            )
        )
    return out


def _difference(expected: Any, got: Any) -> Any:
    """The first row of the screen that differs, else the styles."""
    for row, (want, have) in enumerate(zip(expected[0], got[0], strict=True)):
        if want != have:
            return row, want, have
    return expected[1:], got[1:]


async def _start(folder: Path, sources: list[Source] | None = None) -> dict[str, Any]:
    """The app at 80x24 on a new copy of the test account (nothing read or changed by an
    earlier run), on its chat screen, then in the light theme: what each showed."""
    make_profile(folder)
    server = FakeHomeserver()
    seen: dict[str, Any] = {}
    app = TuiClientApp(base_dir=folder, transport=server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await show_general(pilot)
        seen["dark"] = (_screen(app), _styles(app), app.theme)
        variables = {"dark": dict(app.stylesheet._variables)}
        app.theme = "tui-light"
        await wait_for(pilot, lambda: app.stylesheet._variables != variables["dark"], "the theme")
        seen["light"] = (_screen(app), _styles(app), app.theme)
        variables["light"] = dict(app.stylesheet._variables)
        if sources is not None:
            for values in variables.values():
                for read_from, (
                    css,
                    is_defaults,
                    tie_breaker,
                    scope,
                ) in app.stylesheet.source.items():
                    sources.append(
                        (css, read_from, is_defaults, tie_breaker, scope, tuple(values.items()))
                    )
    assert seen["dark"][0] != seen["light"][0]  # the theme changed the colours on the screen
    return seen


async def test_a_warm_start_parses_nothing_and_paints_the_same(
    tmp_path: Path, memory_keyring: None, table: Path
) -> None:
    # Textual's own parse, no table.
    css_cache.uninstall()
    plain = await _start(tmp_path / "plain")

    # The first start with the table: everything parsed (and kept), written at exit.
    css_cache.install(table, save_at_exit=False)
    cold = await _start(tmp_path / "cold")
    assert css_cache.stats()["misses"] > 20
    assert css_cache.save()
    assert stat.S_IMODE(table.stat().st_mode) == 0o600

    # The next start reads the table: nothing parsed, the dark then the light theme's rules
    # read back; the screen (every cell's text and style) and the styles are the same.
    css_cache.uninstall()
    css_cache.install(table, save_at_exit=False)
    sources: list[Source] = []
    warm = await _start(tmp_path / "warm", sources)
    stats = css_cache.stats()
    assert stats["misses"] == 0 and stats["hits"] > 20, stats
    assert not css_cache.save()  # nothing new: the file is not written again
    for theme in ("dark", "light"):
        for name, seen in (("cold", cold), ("warm", warm)):
            assert seen[theme] == plain[theme], (
                name,
                theme,
                _difference(plain[theme], seen[theme]),
            )

    # Every one of the app's stylesheets, under either theme: the rules read back are those
    # Textual parses, rule set by rule set.
    assert len(sources) > 40
    for css, read_from, is_defaults, tie_breaker, scope, variables in sources:
        fresh = css_cache._real_parse_rules(
            Stylesheet(variables=dict(variables)), css, read_from, is_defaults, tie_breaker, scope
        )
        hits = css_cache.stats()["hits"]
        kept = Stylesheet(variables=dict(variables))._parse_rules(
            css, read_from, is_defaults, tie_breaker, scope
        )
        assert css_cache.stats()["hits"] == hits + 1, read_from
        assert kept is not fresh
        assert _normal(kept) == _normal(fresh), read_from


#: A small stylesheet with what a widget's has: a variable, a layout, nested rules.
CSS = """
Bar { background: $bar-background; color: red; layout: horizontal; &:hover { color: blue; } }
Bar, Baz { &.-on { width: 1fr; } }
"""
LOCATION = ("bar.py", "Bar.DEFAULT_CSS")
RED = {"bar-background": "red"}


def _parse(variables: dict[str, str]) -> list[RuleSet]:
    return Stylesheet(variables=variables)._parse_rules(CSS, LOCATION)


def _fill(table: Path) -> list[RuleSet]:
    css_cache.install(table, save_at_exit=False)
    rules = _parse(RED)
    assert css_cache.save()
    css_cache.uninstall()
    return rules


def _read_back(table: Path) -> dict[str, int]:
    """A new start's parse of the same text: what the table gave, and whether it was
    written again at exit."""
    css_cache.install(table, save_at_exit=False)
    rules = _parse(RED)
    stats = {**css_cache.stats(), "written": css_cache.save()}
    assert _normal(rules) == _normal(
        css_cache._real_parse_rules(Stylesheet(variables=RED), CSS, LOCATION)
    )
    css_cache.uninstall()
    return stats


@pytest.mark.parametrize(
    "damage",
    ["cut", "garbage", "other textual", "an entry", "others may write"],
)
def test_a_table_that_does_not_read_back_is_parsed_anew_and_rewritten(
    table: Path, damage: str
) -> None:
    _fill(table)
    data = table.read_bytes()
    header = data[: data.index(b"\n") + 1]
    assert header.startswith(b"tui-css-rules-")
    if damage == "cut":
        table.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        table.write_bytes(header + b"\x00not marshal")
    elif damage == "other textual":
        # Another Textual: another size of its parser's file.
        table.write_bytes(data.replace(b"textual.css.parse ", b"textual.css.parse 1", 1))
    elif damage == "an entry":
        import marshal

        entries = marshal.loads(data[len(header) :])
        table.write_bytes(header + marshal.dumps(dict.fromkeys(entries, b"\x80\x05garbage")))
    else:
        os.chmod(table, 0o666)
    damaged = _read_back(table)
    assert damaged["hits"] == 0 and damaged["misses"] == 1 and damaged["written"], damaged
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    assert table.read_bytes().startswith(header)
    again = _read_back(table)
    assert again["hits"] == 1 and again["misses"] == 0 and not again["written"], again


def test_other_variables_are_another_entry(table: Path) -> None:
    _fill(table)
    css_cache.install(table, save_at_exit=False)
    white = _parse({"bar-background": "white"})
    assert css_cache.stats() == {"hits": 0, "misses": 1, "added": 1, "entries": 2}
    red = _parse(RED)
    assert css_cache.stats()["hits"] == 1
    assert (white[0].styles.background.rgb, red[0].styles.background.rgb) == (
        (255, 255, 255),
        (255, 0, 0),
    )


def test_a_textual_whose_parse_takes_other_arguments_is_left_alone(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other(self: Stylesheet, css: str, location: tuple[str, str]) -> list[RuleSet]:
        return []

    own = Stylesheet._parse_rules
    monkeypatch.setattr(css_cache, "_real_parse_rules", other)
    css_cache.install(table, save_at_exit=False)
    assert Stylesheet._parse_rules is own
    # And forgetting the table leaves Textual's own parse, whatever the teardown order
    # (it once put back ``other`` for every later test of the session).
    css_cache.uninstall()
    assert Stylesheet._parse_rules is own
    assert Stylesheet(variables={})._parse_rules("Screen { color: red; }", ("t", ""))
