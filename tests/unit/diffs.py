"""Apply timeline diffs to a plain list, the way the UI does, and check the model agrees."""

from __future__ import annotations

from collections.abc import Iterable

from tui_client.protocol.timeline import Diff, TimelineItem, TimelineModel


def apply_diffs(items: list[TimelineItem], diffs: Iterable[Diff]) -> list[TimelineItem]:
    """Apply ``diffs`` in order to ``items`` (in place) and return it.

    Fails on a diff that could not be applied to a real list: an index out of range,
    or an ``update`` that would replace a different item than the one it carries.
    """
    for diff in diffs:
        if diff.op == "insert":
            assert diff.item is not None, diff
            assert 0 <= diff.index <= len(items), (diff.index, len(items))
            items.insert(diff.index, diff.item)
        elif diff.op == "update":
            assert diff.item is not None, diff
            assert 0 <= diff.index < len(items), (diff.index, len(items))
            assert items[diff.index].key == diff.item.key, (items[diff.index].key, diff.item.key)
            items[diff.index] = diff.item
        elif diff.op == "remove":
            assert 0 <= diff.index < len(items), (diff.index, len(items))
            del items[diff.index]
        elif diff.op == "reset":
            items[:] = list(diff.items)
        else:
            raise AssertionError(f"unknown diff op {diff.op!r}")
    return items


class Mirror:
    """A model and the list a UI would keep by applying its diffs; they must agree."""

    def __init__(self, model: TimelineModel) -> None:
        self.model = model
        self.items: list[TimelineItem] = list(model.items)

    def apply(self, diffs: list[Diff]) -> list[Diff]:
        """Apply ``diffs`` and assert the mirrored list equals ``model.items``."""
        apply_diffs(self.items, diffs)
        self.check()
        return diffs

    def check(self) -> None:
        """Assert the mirror equals the model, and no key is shown twice."""
        assert self.items == self.model.items
        keys = [item.key for item in self.items]
        assert len(keys) == len(set(keys)), keys
        assert len(self.model) == len(self.items)

    @property
    def keys(self) -> list[str]:
        """The keys of the mirrored items, in order."""
        return [item.key for item in self.items]

    def by_key(self, key: str) -> TimelineItem:
        """The mirrored item with this key."""
        for item in self.items:
            if item.key == key:
                return item
        raise AssertionError(f"no item {key!r} in {self.keys}")
