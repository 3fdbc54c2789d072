"""A space's hierarchy as an indented list (``OptionList``): every child, joined or not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...protocol.sanitize import clean_line
from ...protocol.spaces import HierarchyRow
from .directory_list import room_facts

NEAR_END = 10


def row_prompt(
    row: HierarchyRow,
    *,
    membership: str | None,
    encrypted: bool | None,
    names: Mapping[str, str],
    space_name: str,
    in_space: bool = False,
) -> Text:
    """One row: indentation, icon, name, suggested mark, then the room's facts.

    A child the server did not describe is one the user may not see: open to the
    members of the space (``in_space`` False: they should join it first), or invite-only.
    """
    text = Text("  " * row.depth)
    info = row.info
    if info is None:
        text.append("🔒 ", style=Style(dim=True))
        if in_space:
            text.append("A room you cannot see", style=Style(italic=True))
            text.append(
                f"  invite only, or for members of another space · {clean_line(row.room_id)}",
                style=Style(dim=True),
            )
        else:
            text.append("A room for members", style=Style(italic=True))
            text.append(
                f"  join {space_name} to see it (s) · {clean_line(row.room_id)}",
                style=Style(dim=True),
            )
        return text
    text.append(
        "◆ " if info.is_space else "# ", style=Style(bold=info.is_space, dim=not info.is_space)
    )
    text.append(info.display_name, style=Style(bold=True))
    if row.suggested:
        text.append("  ★ suggested", style=Style(color="#e5c07b", bold=True))
    text.append("  ")
    text.append_text(
        room_facts(info, membership=membership, encrypted=encrypted, names=dict(names))
    )
    topic = info.topic_line
    if topic and row.depth > 0:
        text.append("  " + topic, style=Style(dim=True, italic=True))
    return text


class SpaceTree(OptionList):
    """The rows of a space view."""

    DEFAULT_CSS = """
    SpaceTree {
        height: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    class NearEnd(Message):
        """The user reached the last loaded rows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(markup=False, id=id)
        self.rows: dict[str, HierarchyRow] = {}
        self._signature: tuple[object, ...] = ()

    def show_rows(
        self,
        rows: Sequence[HierarchyRow],
        *,
        memberships: Mapping[str, str],
        encrypted: Mapping[str, bool],
        names: Mapping[str, str],
        space_name: str,
        in_space: bool = False,
    ) -> None:
        """Rebuild (keeping the highlighted row)."""
        signature = (
            tuple((r.key, r.depth, r.info, r.suggested) for r in rows),
            tuple(sorted((r.room_id, memberships.get(r.room_id, "")) for r in rows)),
            tuple(sorted(encrypted.items())),
            in_space,
        )
        if signature == self._signature:
            return
        self._signature = signature
        highlighted = self.highlighted_option.id if self.highlighted_option else None
        self.rows = {row.key: row for row in rows}
        self.set_options(
            Option(
                row_prompt(
                    row,
                    membership=memberships.get(row.room_id),
                    encrypted=encrypted.get(row.room_id),
                    names=names,
                    space_name=space_name,
                    in_space=in_space,
                ),
                id=row.key,
            )
            for row in rows
        )
        index = 0
        if highlighted is not None:
            try:
                index = self.get_option_index(highlighted)
            except Exception:
                index = 0
        self.highlighted = index if rows else None

    @property
    def highlighted_row(self) -> HierarchyRow | None:
        """The row under the cursor."""
        option = self.highlighted_option
        return self.rows.get(option.id) if option is not None and option.id else None

    def watch_highlighted(self, highlighted: int | None) -> None:
        super().watch_highlighted(highlighted)
        if highlighted is not None and highlighted >= self.option_count - NEAR_END:
            self.post_message(self.NearEnd())
