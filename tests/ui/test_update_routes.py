"""The UI's typed dispatch of engine updates (ui/update_routes.py)."""

from __future__ import annotations

from tui_client.engine.updates import Notice, Reminder, TypingChanged
from tui_client.ui.update_routes import UpdateRoutes


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
