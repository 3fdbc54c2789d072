"""Formatted messages: parse and render N HTML messages to timeline lines, against plain text.

Each case takes N ``m.room.message`` events, turns them into timeline items (the
pure timeline model: for HTML messages that includes parsing and sanitising
``formatted_body``) and renders every item to styled lines at 100 columns (the
UI's renderer, as the timeline widget does once per event and width). The
baseline is the same N messages sent as plain text, in the same round.

The formatted mix is Element-like: paragraphs with bold, italics, links and
pills; nested lists with ``start``; quotes; a highlighted code block every
fourth message; a table and a spoiler now and then.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tui_client.protocol.events import parse_event
from tui_client.protocol.timeline import TimelineModel
from tui_client.ui.render import Palette, render_item

from ._harness import Sample, Stopwatch, fmt_ms, print_table, run_rounds, sized

MESSAGES = sized(10_000, 200)
ROUNDS = sized(5, 1)
WIDTH = 100
PLAIN = "plain text"
FORMATTED = "formatted HTML"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "matrix",
    "rooms",
    "sync",
]


def _sentence(rng: random.Random, low: int = 4, high: int = 18) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def element_html(n: int, rng: random.Random) -> str:
    """An Element-style formatted_body: a paragraph with styles, links and a pill, and one
    block (code, nested lists, nested quotes, a table, a spoiler or a heading) by ``n``."""
    parts = [
        f"<p>{_sentence(rng)} <b>{_sentence(rng, 1, 3)}</b> <em>{_sentence(rng, 1, 3)}</em> "
        f'<a href="https://example.org/{n}">{_sentence(rng, 1, 3)}</a> '
        f'<a href="https://matrix.to/#/@user{n % 12}:bench.example">User {n % 12}</a> <code>x = {n}</code></p>'
    ]
    kind = n % 8
    if kind in (0, 4):
        parts.append(
            '<pre><code class="language-python">def handler(event):\n'
            f"    total = {n}\n    for item in event.items:\n        total += item.size\n    return total\n</code></pre>"
        )
    elif kind == 1:
        parts.append(
            f'<ol start="{n % 7 + 1}"><li>{_sentence(rng)}</li><li>{_sentence(rng)}'
            f"<ul><li>{_sentence(rng)}</li><li>{_sentence(rng)}</li></ul></li></ol>"
        )
    elif kind == 2:
        parts.append(
            f"<blockquote><p>{_sentence(rng)}</p><blockquote><p>{_sentence(rng)}</p></blockquote></blockquote>"
        )
    elif kind == 3:
        parts.append(
            "<table><thead><tr><th>name</th><th>count</th></tr></thead><tbody>"
            + "".join(
                f"<tr><td>{rng.choice(WORDS)}</td><td>{rng.randint(1, 999)}</td></tr>"
                for _ in range(3)
            )
            + "</tbody></table>"
        )
    elif kind == 5:
        parts.append(f'<p>and <span data-mx-spoiler="plot">{_sentence(rng)}</span></p>')
    elif kind == 6:
        parts.append(f"<h3>{_sentence(rng, 2, 5)}</h3><p>{_sentence(rng)}</p>")
    return "\n".join(parts)


def _events(formatted: bool, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for n in range(MESSAGES):
        html = element_html(n, rng)
        content: dict[str, Any] = {"msgtype": "m.text", "body": f"{n}: {_sentence(rng, 10, 40)}"}
        if formatted:
            content.update(format="org.matrix.custom.html", formatted_body=html)
        events.append(
            {
                "event_id": f"$ev{n:08d}",
                "type": "m.room.message",
                "sender": f"@user{n % 12}:bench.example",
                "origin_server_ts": 1_700_000_000_000 + n * 30_000,
                "content": content,
            }
        )
    return events


def _case(formatted: bool) -> Any:
    raw = _events(formatted)
    names = {f"@user{n}:bench.example": f"User {n}" for n in range(12)}
    palette = Palette()

    def case(_folder: Path) -> Sample:
        watch = Stopwatch()
        events = [parse_event(e) for e in raw]
        with watch.part("model"):
            model = TimelineModel("@me:bench.example", lambda user: names.get(user, user))
            model.reset(events)
            items = model.items
        lines = 0
        with watch.part("render"):
            previous = None
            for item in items:
                lines += len(
                    render_item(item, previous, lambda user: names.get(user, user), WIDTH, palette)
                )
                previous = item
        watch.sample.parts["lines"] = lines
        return watch.sample

    return case


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    """Both cases, ``rounds`` rounds in rotating order; the formatted/plain ratios."""
    results = run_rounds({PLAIN: _case(False), FORMATTED: _case(True)}, PLAIN, rounds)
    return {"results": results}


def rows(rounds: int = ROUNDS) -> list[list[str]]:
    """Table rows for ``python -m bench``."""
    results = run(rounds)["results"]
    ours, base = results[FORMATTED], results[PLAIN]
    return [
        [
            f"render {MESSAGES:,} formatted messages",
            fmt_ms(ours.wall_median),
            fmt_ms(base.wall_median),
            f"{ours.wall_ratio:.2f}",
            f"{ours.cpu_ratio:.2f}",
            "",
            "the same messages as plain text",
        ]
    ]


def main() -> None:
    """Print the formatted-message benchmark with its parts."""
    results = run()["results"]
    print(f"formatted: {MESSAGES:,} messages to timeline lines at {WIDTH} columns, vs plain text")
    table = []
    for name in (PLAIN, FORMATTED):
        result = results[name]
        parts = result.part_medians()
        table.append(
            [
                name,
                fmt_ms(result.wall_median),
                fmt_ms(parts.get("model", 0.0)),
                fmt_ms(parts.get("render", 0.0)),
                f"{parts.get('lines', 0.0):,.0f}",
                f"{result.wall_ratio:.2f}",
                f"{1e6 * result.wall_median / MESSAGES:.0f} us",
            ]
        )
    print_table(
        table, ["case", "total", "model+parse", "render", "lines", "x (wall)", "per message"]
    )


if __name__ == "__main__":
    main()
