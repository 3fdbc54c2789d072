"""The UI's typed dispatch of engine updates, and what a frame keeps of them (ui/update_routes.py)."""

from __future__ import annotations

from tui_client.engine.updates import (
    Notice,
    Reminder,
    RoomListChanged,
    SyncState,
    SyncStatus,
    TypingChanged,
    Update,
)
from tui_client.ui.update_routes import UpdateRoutes, coalesce


def test_each_update_goes_to_the_handlers_of_its_own_class_in_order() -> None:
    seen: list[str] = []
    routes = (
        UpdateRoutes()
        .on(Notice, lambda update: seen.append(f"first {update.text}"))
        .on(TypingChanged, lambda update: seen.append(f"typing {','.join(update.user_ids)}"))
        .on(Notice, lambda update: seen.append(f"second {update.text}"))
    )
    assert routes.dispatch(Notice("info", "hello")) is True
    assert routes.dispatch(TypingChanged("!r:x", ("@a:x",))) is True
    # A class with no route is left alone (Reminder has the same fields as Notice).
    assert routes.dispatch(Reminder("info", "quiet")) is False
    assert seen == ["first hello", "second hello", "typing @a:x"]
    assert routes.kinds() == frozenset({Notice, TypingChanged})


def _rooms(changed: set[str]) -> RoomListChanged:
    return RoomListChanged((), frozenset(changed))


def test_a_frame_keeps_the_newest_room_list_status_and_typing_in_order() -> None:
    syncing, synced = SyncState(SyncStatus.SYNCING), SyncState(SyncStatus.CONNECTED)
    notice = Notice("info", "hello")
    updates: list[Update] = [
        _rooms({"!a:x"}),
        TypingChanged("!a:x", ("@a:x",)),
        syncing,
        TypingChanged("!b:x", ()),
        notice,
        _rooms({"!b:x"}),
        TypingChanged("!a:x", ()),
        synced,
    ]
    kept = coalesce(updates)
    # The newest of each kind, where it stood; the older room lists' rooms merged into it.
    assert kept == [
        TypingChanged("!b:x", ()),
        notice,
        _rooms({"!a:x", "!b:x"}),
        TypingChanged("!a:x", ()),
        synced,
    ]
    assert coalesce([notice, notice]) == [notice, notice]  # the others are all kept
