"""What a room switch leaves behind is freed by reference counting, not left as cycles.

engine/gc_policy.py freezes what is alive at each room switch; what was frozen and then
dies in a reference cycle stays in the permanent generation until a compaction. The soak
(bench/soak.py) found two such cycles made at every switch: the lines on screen (Textual's
``Strip.divide`` memoized ``[strip]`` in the strip itself; ui/strip_cycles.py) and the
closed room's view (its timeline model's callbacks held the view; engine/room_view.py).
Here the collector keeps what it finds (``DEBUG_SAVEALL``) while the app, at 80x24,
switches rooms, and none of it may be a screen line in a cycle with itself or a room view.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.strip import Strip

from tui_client.engine import gc_policy
from tui_client.engine.room_view import RoomView
from tui_client.ui.app import TuiClientApp

from .fake_world import RANDOM_ID, FakeHomeserver
from .test_snapshots import GENERAL, wait_for


def _reaches_itself(strip: Strip) -> bool:
    """Whether ``strip`` is among the objects it refers to (through its memo caches)."""
    seen: set[int] = set()
    todo = list(gc.get_referents(strip))
    while todo:
        item = todo.pop()
        if item is strip:
            return True
        container = isinstance(item, (Strip, list, dict, tuple))
        if id(item) in seen or not (container or type(item).__module__ == "textual.cache"):
            continue
        seen.add(id(item))
        todo.extend(gc.get_referents(item))
    return False


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Everything the collector finds unreachable meanwhile (frozen objects included)."""
    gc.unfreeze()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc_policy.reset()


async def test_room_switches_leave_no_cyclic_lines_or_views(
    fake_profile: Path, saved_garbage: list[object]
) -> None:
    app = TuiClientApp(base_dir=fake_profile, transport=FakeHomeserver().transport())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot,
            lambda: app.chat_screen is not None and app.chat_screen.view is not None,
            "a room",
        )
        chat = app.chat_screen
        assert chat is not None
        for room in (RANDOM_ID, GENERAL, RANDOM_ID, GENERAL):
            app.open_room(room)
            await wait_for(
                pilot, lambda room=room: chat.view is not None and chat.view.room_id == room, room
            )
        assert chat.view is not None and chat.view.model.items, "the room shows no messages"
        gc.unfreeze()
        gc.collect()
        saved_garbage.extend(gc.garbage)
    views = [o for o in saved_garbage if isinstance(o, RoomView)]
    assert not views, f"{len(views)} closed room views were freed by the collector"
    strips = [o for o in saved_garbage if isinstance(o, Strip)]
    cyclic = [s for s in strips if _reaches_itself(s)]
    assert not cyclic, (
        f"{len(cyclic)} of {len(strips)} screen lines in the garbage refer to themselves, "
        f"e.g. {cyclic[0].text!r}"
    )
