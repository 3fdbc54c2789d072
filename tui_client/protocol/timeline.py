"""The per-room timeline model: events in, display items and small diffs out.

The model holds a window of a room's timeline (the engine decides which window)
and turns it into :class:`TimelineItem` values: one per message or state change,
with edits applied, reactions aggregated, replies resolved, thread replies counted
under their root, redactions shown as "message deleted", and local echoes of what
the user is sending (``PENDING`` -> ``SENT`` -> replaced by the server's event, or
``FAILED``). Every change returns the :class:`Diff` list that brings a copy of the
item list up to date, so the UI never rebuilds what did not change.

Relations are kept by target, independent of the window: a reaction or edit that
arrives before its target (or whose target is paged in later) is applied as soon
as the target is shown.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .events import RoomEvent, UnknownEvent, relation_of
from .media import ImageRef, parse_image
from .render import Rendered, describe, message_body
from .room_state import redaction_applies
from .sanitize import clean_line

if TYPE_CHECKING:  # parsed by .render when a formatted body is first met (issue 13)
    from .html import Document

__all__ = [
    "HIDDEN_QUOTE",
    "Diff",
    "Reaction",
    "ReplyQuote",
    "SendState",
    "TimelineItem",
    "TimelineModel",
]

# Event types that are never a line of their own in the main timeline.
_HIDDEN_TYPES = frozenset(
    {
        "m.reaction",
        "m.room.redaction",
        "m.key.verification.ready",
        "m.key.verification.start",
        "m.key.verification.accept",
        "m.key.verification.key",
        "m.key.verification.mac",
        "m.key.verification.done",
        "m.key.verification.cancel",
    }
)


class SendState(enum.Enum):
    """Where a message is on its way to the server."""

    SENT = "sent"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Reaction:
    """One reaction key under a message: how many, who, and whether we are among them."""

    key: str
    count: int
    senders: tuple[str, ...]
    mine: bool


@dataclass(frozen=True, slots=True)
class ReplyQuote:
    """The message a reply quotes. ``body`` is ``None`` while the parent is not loaded."""

    event_id: str
    sender: str | None = None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One line (or block) of the timeline as the UI shows it."""

    key: str
    event_id: str | None
    txn_id: str | None
    sender: str
    ts: int
    kind: str
    body: str
    event_type: str
    edited: bool = False
    reactions: tuple[Reaction, ...] = ()
    reply: ReplyQuote | None = None
    thread_count: int = 0
    send_state: SendState = SendState.SENT
    error: str | None = None
    encrypted: bool = False
    trust: str | None = None
    #: The sending device of an encrypted message (its trust may change after it was shown).
    device_id: str | None = None
    #: The sanitised ``formatted_body`` of an HTML message (its plain ``body`` stays beside it).
    formatted: Document | None = None
    #: The picture of an ``m.image`` message or a sticker (drawn under its text line).
    image: ImageRef | None = None

    @property
    def is_local_echo(self) -> bool:
        """True for a message of ours that the server has not echoed back yet."""
        return self.key.startswith("~")


@dataclass(frozen=True, slots=True)
class Diff:
    """One change to the item list: ``insert``, ``update``, ``remove`` or ``reset``.

    Apply in order. ``insert`` puts ``item`` at ``index`` (shifting later items),
    ``update`` replaces the item at ``index``, ``remove`` deletes it, ``reset``
    replaces the whole list with ``items``.
    """

    op: str
    index: int = 0
    item: TimelineItem | None = None
    items: tuple[TimelineItem, ...] = ()


@dataclass(slots=True)
class _LocalEcho:
    txn_id: str
    event_type: str
    content: dict[str, Any]
    sender: str
    ts: int
    state: SendState = SendState.PENDING
    event_id: str | None = None
    error: str | None = None


@dataclass(slots=True)
class _Aggregates:
    edits: dict[str, RoomEvent] = field(default_factory=dict)
    reactions: dict[str, tuple[str, str]] = field(default_factory=dict)  # event_id -> (sender, key)
    thread: set[str] = field(default_factory=set)


def _local_key(txn_id: str) -> str:
    return "~" + txn_id


def _unknown_key(event: UnknownEvent) -> str:
    # Without an event ID, the object itself is what makes a malformed event distinct.
    return event.event_id or f"?{id(event)}"


class TimelineModel:
    """A window of one room's timeline, as display items. Pure: no I/O.

    ``own_user_id`` marks our reactions; ``name_of`` gives display names for state
    lines (the engine passes the room's disambiguated names); ``room_name`` the names
    of rooms that state lines point at, when known. With ``thread_root`` the model is
    that thread's timeline: its ``m.thread`` replies are items of their own rather than
    a count under the root.
    """

    def __init__(
        self,
        own_user_id: str,
        name_of: Callable[[str], str] | None = None,
        may_redact_others: Callable[[str], bool] | None = None,
        room_name: Callable[[str], str | None] | None = None,
        thread_root: str | None = None,
        hidden_sender: Callable[[str], bool] | None = None,
    ) -> None:
        self.own_user_id = own_user_id
        self.thread_root = thread_root
        self._hidden_sender = hidden_sender
        self._name_of = name_of
        self._room_name = room_name
        # Whether a user has the room's redact power level; with the sender's server,
        # that decides whether a redaction applies. None trusts the server.
        self._may_redact_others = may_redact_others
        self._sender_of: dict[str, str] = {}  # senders of absorbed relation events
        self._order: list[str] = []  # keys of shown items, remote events then local echoes
        self._items: dict[str, TimelineItem] = {}
        self._shown: dict[str, RoomEvent | UnknownEvent] = {}
        self._context: dict[str, RoomEvent] = {}  # known events not shown (reply parents)
        self._aggregates: dict[str, _Aggregates] = {}
        self._relation_target: dict[str, str] = {}
        self._redacted: dict[str, str] = {}  # redacted event -> who redacted it
        self._local: dict[str, _LocalEcho] = {}
        self._replies_to: dict[str, set[str]] = {}  # parent event_id -> keys of replies

    # -- reading -------------------------------------------------------------------

    @property
    def items(self) -> list[TimelineItem]:
        """The items in display order (a new list)."""
        return [self._items[key] for key in self._order]

    def __len__(self) -> int:
        return len(self._order)

    def item(self, key: str) -> TimelineItem | None:
        """The item with this key (an event ID, or ``~txn`` for a local echo)."""
        return self._items.get(key)

    def first_event_id(self) -> str | None:
        """The oldest shown event, for paging backwards."""
        for key in self._order:
            if not key.startswith("~"):
                return key
        return None

    def last_event_id(self) -> str | None:
        """The newest shown server event (local echoes excluded), for read receipts."""
        for key in reversed(self._order):
            if not key.startswith("~"):
                return key
        return None

    def has_event(self, event_id: str) -> bool:
        """True if the event is known to the model (shown, a relation, or context)."""
        return (
            event_id in self._shown
            or event_id in self._relation_target
            or event_id in self._context
        )

    def reaction_event_id(self, target: str, sender: str, key: str) -> str | None:
        """The event ID of ``sender``'s reaction ``key`` to ``target``, if one is known."""
        aggregates = self._aggregates.get(target)
        if aggregates is None:
            return None
        for event_id, (who, reaction_key) in aggregates.reactions.items():
            if who == sender and reaction_key == key:
                return event_id
        return None

    def content_of(self, event_id: str) -> dict[str, Any] | None:
        """The content of a shown event as it was sent (not its latest edit)."""
        event = self._shown.get(event_id)
        return event.content if isinstance(event, RoomEvent) else None

    # -- loading -------------------------------------------------------------------

    def reset(
        self, events: Iterable[RoomEvent | UnknownEvent], relations: Iterable[RoomEvent] = ()
    ) -> list[Diff]:
        """Replace the window with ``events`` (oldest first) and their known relations."""
        self._order = [k for k in self._order if k.startswith("~")]
        self._items = {k: v for k, v in self._items.items() if k.startswith("~")}
        self._shown.clear()
        self._drop_hidden_relations()
        for relation in relations:
            self._absorb_relation(relation)
        events = list(events)
        for event in events:
            echo = self._echo_for(event) if isinstance(event, RoomEvent) else None
            if echo is not None:
                # The server's copy is in the window: the local echo has done its job.
                del self._local[echo]
                self._order.remove(_local_key(echo))
                self._items.pop(_local_key(echo), None)
        keys: list[str] = []
        for event in events:
            if self._is_known(event):  # the same event twice is shown once
                continue
            key = self._accept(event)
            if key is not None:
                keys.append(key)
        self._order = keys + self._order
        for key in keys:
            self._items[key] = self._build(key)
        return [Diff("reset", items=tuple(self.items))]

    def add_context(self, events: Iterable[RoomEvent]) -> list[Diff]:
        """Events that are not shown but that shown items refer to (reply parents)."""
        diffs: list[Diff] = []
        for event in events:
            if self._is_redacted(event) and event.redacted_because is None:
                event = replace(
                    event, content={}, unsigned={**event.unsigned, "redacted_because": {}}
                )
            self._context[event.event_id] = event
            diffs.extend(self._refresh_replies_to(event.event_id))
        return diffs

    def append(self, events: Iterable[RoomEvent | UnknownEvent]) -> list[Diff]:
        """Add live events at the end (after shown events, before local echoes)."""
        diffs: list[Diff] = []
        for event in events:
            diffs.extend(self._append_one(event))
        return diffs

    def prepend(self, events: Iterable[RoomEvent | UnknownEvent]) -> list[Diff]:
        """Add older events (oldest first) at the start of the window."""
        diffs: list[Diff] = []
        new_keys: list[str] = []
        for event in events:
            if self._is_known(event):
                continue
            key = self._accept(event)
            if key is not None:
                new_keys.append(key)
            elif isinstance(event, RoomEvent):
                diffs.extend(self._refresh_target_of(event))
        for index, key in enumerate(new_keys):
            self._order.insert(index, key)
            self._items[key] = self._build(key)
            diffs.append(Diff("insert", index, self._items[key]))
        for key in new_keys:
            diffs.extend(self._rebuild_replies_to(key))
        return diffs

    def _is_known(self, event: RoomEvent | UnknownEvent) -> bool:
        if isinstance(event, UnknownEvent):
            return _unknown_key(event) in self._shown
        return event.event_id in self._shown or event.event_id in self._relation_target

    def drop_oldest(self, count: int) -> list[Diff]:
        """Forget the ``count`` oldest shown items (keeps memory bounded while scrolling)."""
        diffs: list[Diff] = []
        for _ in range(min(count, len(self._shown))):
            key = self._order[0]
            if key.startswith("~"):
                break
            self._forget(key)
            diffs.append(Diff("remove", 0))
        return diffs

    def drop_newest(self, count: int) -> list[Diff]:
        """Forget the ``count`` newest shown server events (local echoes stay)."""
        diffs: list[Diff] = []
        remote = [k for k in self._order if not k.startswith("~")]
        for key in reversed(remote[-count:] if count else []):
            index = self._order.index(key)
            self._forget(key)
            diffs.append(Diff("remove", index))
        return diffs

    def _forget(self, key: str) -> None:
        self._order.remove(key)
        self._items.pop(key, None)
        self._shown.pop(key, None)

    # -- local echo ----------------------------------------------------------------

    def add_local_echo(
        self,
        txn_id: str,
        event_type: str,
        content: dict[str, Any],
        ts: int,
        state: SendState = SendState.PENDING,
        event_id: str | None = None,
        error: str | None = None,
    ) -> list[Diff]:
        """Show a message we are sending, at the end, before the server has it."""
        key = _local_key(txn_id)
        if key in self._items or (event_id and event_id in self._shown):
            return []
        self._local[txn_id] = _LocalEcho(
            txn_id, event_type, content, self.own_user_id, ts, state, event_id, error
        )
        self._order.append(key)
        self._items[key] = self._build(key)
        return [Diff("insert", len(self._order) - 1, self._items[key])]

    def update_local_echo(
        self,
        txn_id: str,
        state: SendState,
        *,
        event_id: str | None = None,
        error: str | None = None,
    ) -> list[Diff]:
        """Mark a local echo sent (with its event ID), failed, or pending again."""
        echo = self._local.get(txn_id)
        if echo is None:
            return []
        if event_id and event_id in self._shown:
            # The server's copy is already here; the echo has done its job.
            return self.remove_local_echo(txn_id)
        echo.state = state
        echo.event_id = event_id or echo.event_id
        echo.error = error
        return self._rebuild(_local_key(txn_id))

    def remove_local_echo(self, txn_id: str) -> list[Diff]:
        """Remove a local echo (cancelled by the user, or replaced by the server's event)."""
        key = _local_key(txn_id)
        if txn_id not in self._local:
            return []
        del self._local[txn_id]
        index = self._order.index(key)
        self._order.pop(index)
        self._items.pop(key, None)
        return [Diff("remove", index)]

    def _echo_for(self, event: RoomEvent) -> str | None:
        txn = event.transaction_id
        if txn and txn in self._local:
            return txn
        for echo in self._local.values():
            if echo.event_id == event.event_id:
                return echo.txn_id
        return None

    # -- applying events -----------------------------------------------------------

    def _append_one(self, event: RoomEvent | UnknownEvent) -> list[Diff]:
        diffs: list[Diff] = []
        if self._is_known(event):
            return []
        if isinstance(event, RoomEvent):
            echo = self._echo_for(event)
            if echo is not None:
                diffs.extend(self.remove_local_echo(echo))
        key = self._accept(event)
        if key is None:
            if isinstance(event, RoomEvent):
                diffs.extend(self._refresh_target_of(event))
            return diffs
        index = len(self._order) - len(self._local)
        self._order.insert(index, key)
        self._items[key] = self._build(key)
        diffs.append(Diff("insert", index, self._items[key]))
        diffs.extend(self._rebuild_replies_to(key))
        return diffs

    def _hides(self, event: RoomEvent) -> bool:
        """True for a message-like event (not state) of a hidden sender."""
        return (
            self._hidden_sender is not None
            and event.state_key is None
            and event.sender != self.own_user_id
            and self._hidden_sender(event.sender)
        )

    def _drop_hidden_relations(self) -> None:
        """Forget the reactions, edits and thread replies of senders hidden now."""
        if self._hidden_sender is None:
            return
        hidden = {
            event_id
            for event_id, sender in self._sender_of.items()
            if sender != self.own_user_id and self._hidden_sender(sender)
        }
        if not hidden:
            return
        for aggregates in self._aggregates.values():
            for event_id in hidden & aggregates.edits.keys():
                del aggregates.edits[event_id]
            for event_id in hidden & aggregates.reactions.keys():
                del aggregates.reactions[event_id]
            aggregates.thread -= hidden
        for event_id in hidden:
            self._relation_target.pop(event_id, None)
            self._sender_of.pop(event_id, None)

    def _accept(self, event: RoomEvent | UnknownEvent) -> str | None:
        """Record an event; return its key if it is shown as an item of its own."""
        if isinstance(event, UnknownEvent):
            key = _unknown_key(event)
            self._shown[key] = event
            return key
        if event.type == "m.room.redaction":
            self._apply_redaction(event)
            return None
        if self._hides(event):
            # Kept as context: replies to it quote it as hidden, and it is not fetched again.
            self._context[event.event_id] = event
            return None
        if self._absorb_relation(event):
            return None
        if event.type in _HIDDEN_TYPES:
            return None
        if self._is_redacted(event) and event.redacted_because is None:
            event = replace(event, content={}, unsigned={**event.unsigned, "redacted_because": {}})
        self._shown[event.event_id] = event
        relation = event.relation
        if relation and relation.in_reply_to:
            self._replies_to.setdefault(relation.in_reply_to, set()).add(event.event_id)
        return event.event_id

    def _absorb_relation(self, event: RoomEvent) -> bool:
        """Record edits, reactions and thread replies by target; True if not shown alone."""
        relation = relation_of(event.content)
        if relation is None or relation.event_id is None or event.redacted_because is not None:
            return False
        if self._hides(event):
            # Not recorded, so a reset after the sender is shown again absorbs it.
            return relation.rel_type in ("m.replace", "m.annotation", "m.thread")
        target = relation.event_id
        if (
            relation.rel_type == "m.thread"
            and self.thread_root is not None
            and target == self.thread_root
        ):
            return False  # a reply in the thread this model shows
        self._sender_of[event.event_id] = event.sender
        if self._is_redacted(event):
            self._relation_target[event.event_id] = target
            return relation.rel_type in ("m.replace", "m.annotation", "m.thread")
        if relation.rel_type == "m.replace":
            self._aggregates.setdefault(target, _Aggregates()).edits[event.event_id] = event
        elif relation.rel_type == "m.annotation" and event.type == "m.reaction" and relation.key:
            self._aggregates.setdefault(target, _Aggregates()).reactions[event.event_id] = (
                event.sender,
                relation.key,
            )
        elif relation.rel_type == "m.thread":
            self._aggregates.setdefault(target, _Aggregates()).thread.add(event.event_id)
        else:
            return False
        self._relation_target[event.event_id] = target
        return True

    def _refresh_target_of(self, event: RoomEvent) -> list[Diff]:
        """Rebuild the items an absorbed relation or a redaction changed."""
        if event.type == "m.room.redaction":
            target = event.redacts
            if not target:
                return []
            diffs = self._refresh_replies_to(target)
            related = self._relation_target.get(target)
            if related:
                diffs.extend(self._refresh_replies_to(related))
            return diffs
        target = self._relation_target.get(event.event_id)
        return self._refresh_replies_to(target) if target else []

    def _may_redact(self, redacter: str, original_sender: str) -> bool:
        if self._may_redact_others is None:
            return True
        return redaction_applies(redacter, original_sender, self._may_redact_others(redacter))

    def _is_redacted(self, event: RoomEvent) -> bool:
        redacter = self._redacted.get(event.event_id)
        return redacter is not None and self._may_redact(redacter, event.sender)

    def _apply_redaction(self, redaction: RoomEvent) -> None:
        target = redaction.redacts
        if not target:
            return
        known = self._shown.get(target) or self._context.get(target)
        sender = known.sender if isinstance(known, RoomEvent) else self._sender_of.get(target)
        if sender is not None and not self._may_redact(redaction.sender, sender):
            return
        self._redacted[target] = redaction.sender
        related_to = self._relation_target.get(target)
        if related_to is not None:
            aggregates = self._aggregates.get(related_to)
            if aggregates:
                aggregates.edits.pop(target, None)
                aggregates.reactions.pop(target, None)
                aggregates.thread.discard(target)
            return
        shown = self._shown.get(target)
        if isinstance(shown, RoomEvent):
            because = {"event_id": redaction.event_id, "sender": redaction.sender}
            self._shown[target] = replace(
                shown, content={}, unsigned={**shown.unsigned, "redacted_because": because}
            )
            self._aggregates.pop(target, None)
        context = self._context.get(target)
        if context is not None:
            self._context[target] = replace(
                context, content={}, unsigned={**context.unsigned, "redacted_because": {}}
            )

    def apply_redaction(self, redaction: RoomEvent) -> list[Diff]:
        """Apply a redaction to whatever it targets (message, edit, reaction, thread reply)."""
        self._apply_redaction(redaction)
        return self._refresh_target_of(redaction)

    def replace_event(self, event: RoomEvent) -> list[Diff]:
        """Swap in a new copy of a known event (decrypted now that its key arrived).

        Works whether the event is shown, is a relation (an encrypted edit or
        reaction), or is only context (a reply parent); unknown events are ignored.
        """
        event_id = event.event_id
        if self._is_redacted(event) and event.redacted_because is None:
            event = replace(event, content={}, unsigned={**event.unsigned, "redacted_because": {}})
        if event_id in self._shown:
            self._shown[event_id] = event
            if self._absorb_relation(event):
                # A decrypted edit or reaction stops being a line of its own.
                index = self._order.index(event_id)
                self._forget(event_id)
                return [Diff("remove", index), *self._refresh_target_of(event)]
            return self._refresh_replies_to(event_id)
        target = self._relation_target.get(event_id)
        if target is not None:
            aggregates = self._aggregates.get(target)
            if aggregates is not None and event_id in aggregates.edits:
                aggregates.edits[event_id] = event
            return self._refresh_replies_to(target)
        if event_id in self._context:
            self._context[event_id] = event
            return self._refresh_replies_to(event_id)
        return []

    # -- building items ------------------------------------------------------------

    def _rebuild(self, key: str) -> list[Diff]:
        if key not in self._items:
            return []
        item = self._build(key)
        if item == self._items[key]:
            return []
        self._items[key] = item
        return [Diff("update", self._order.index(key), item)]

    def _refresh_replies_to(self, parent_id: str) -> list[Diff]:
        # The parent first: a reply quotes the parent's item as it is now.
        return self._rebuild(parent_id) + self._rebuild_replies_to(parent_id)

    def _rebuild_replies_to(self, parent_id: str) -> list[Diff]:
        diffs: list[Diff] = []
        for key in sorted(self._replies_to.get(parent_id, ())):
            diffs.extend(self._rebuild(key))
        return diffs

    def _build(self, key: str) -> TimelineItem:
        if key.startswith("~"):
            return self._build_local(self._local[key[1:]])
        event = self._shown[key]
        if isinstance(event, UnknownEvent):
            rendered = describe(event)
            return TimelineItem(
                key, event.event_id, None, "", 0, rendered.kind, rendered.body, event.type
            )
        rendered = describe(event, self._name_of, self._room_name)
        info = event.encryption_info
        edited = False
        reactions: tuple[Reaction, ...] = ()
        thread_count = 0
        aggregates = self._aggregates.get(key)
        if rendered.kind != "redacted":
            if aggregates is not None:
                latest = self._latest_edit(event, aggregates)
                if latest is not None:
                    rendered = latest
                    edited = True
                reactions = self._reactions(aggregates)
                thread_count = len(aggregates.thread)
            bundled = _bundled_thread_count(event)
            thread_count = max(thread_count, bundled)
        return TimelineItem(
            key=key,
            event_id=event.event_id,
            txn_id=event.transaction_id,
            sender=event.sender,
            ts=event.origin_server_ts,
            kind=rendered.kind,
            body=rendered.body,
            event_type=event.type,
            edited=edited,
            reactions=reactions,
            reply=self._reply_quote(event) if rendered.kind != "redacted" else None,
            thread_count=thread_count,
            encrypted=event.type == "m.room.encrypted" or info is not None,
            trust=info.get("trust")
            if info is not None and isinstance(info.get("trust"), str)
            else None,
            device_id=info.get("device_id")
            if info is not None and isinstance(info.get("device_id"), str)
            else None,
            formatted=rendered.formatted,
            image=parse_image(event.type, event.content) if rendered.kind == "media" else None,
        )

    def _build_local(self, echo: _LocalEcho) -> TimelineItem:
        if echo.event_type == "m.room.message":
            rendered = message_body(echo.content, is_reply=bool(relation_of(echo.content)))
        else:
            rendered = Rendered(
                "unknown", f"sending an event of type {clean_line(echo.event_type)}"
            )
        relation = relation_of(echo.content)
        reply = None
        if relation and relation.in_reply_to:
            reply = self._quote(relation.in_reply_to)
        return TimelineItem(
            key=_local_key(echo.txn_id),
            event_id=echo.event_id,
            txn_id=echo.txn_id,
            sender=echo.sender,
            ts=echo.ts,
            kind=rendered.kind,
            body=rendered.body,
            event_type=echo.event_type,
            reply=reply,
            send_state=echo.state,
            error=echo.error,
            formatted=rendered.formatted,
        )

    def _latest_edit(self, original: RoomEvent, aggregates: _Aggregates) -> Rendered | None:
        # Only edits by the original sender, of the same event type, count (spec: m.replace).
        valid = [
            edit
            for edit in aggregates.edits.values()
            if edit.sender == original.sender
            and edit.type == original.type
            and isinstance(edit.content.get("m.new_content"), dict)
        ]
        if not valid or original.type != "m.room.message":
            return None
        latest = max(valid, key=lambda e: (e.origin_server_ts, e.event_id))
        new_content = latest.content["m.new_content"]
        return message_body(new_content)

    def _reactions(self, aggregates: _Aggregates) -> tuple[Reaction, ...]:
        by_key: dict[str, list[str]] = {}
        for sender, key in aggregates.reactions.values():
            senders = by_key.setdefault(key, [])
            if sender not in senders:  # one reaction per sender and key
                senders.append(sender)
        return tuple(
            Reaction(clean_line(key, 40), len(senders), tuple(senders), self.own_user_id in senders)
            for key, senders in by_key.items()
        )

    def _reply_quote(self, event: RoomEvent) -> ReplyQuote | None:
        relation = event.relation
        if relation is None or relation.in_reply_to is None:
            return None
        if relation.rel_type == "m.thread" and relation.is_falling_back:
            return None
        return self._quote(relation.in_reply_to)

    def _quote(self, parent_id: str) -> ReplyQuote:
        parent = self._shown.get(parent_id) or self._context.get(parent_id)
        if not isinstance(parent, RoomEvent):
            return ReplyQuote(parent_id)
        if self._hides(parent):
            return ReplyQuote(parent_id, parent.sender, HIDDEN_QUOTE)
        parent_item = self._items.get(parent_id)
        if parent_item is not None:
            return ReplyQuote(parent_id, parent.sender, _first_line(parent_item.body))
        rendered = describe(parent, self._name_of)
        return ReplyQuote(parent_id, parent.sender, _first_line(rendered.body))

    def reply_targets_missing(self) -> list[str]:
        """Reply parents we have no copy of (the engine fetches them and calls add_context)."""
        missing = [
            parent
            for parent in self._replies_to
            if parent not in self._shown and parent not in self._context
        ]
        return sorted(missing)


#: What a reply shows of a parent whose sender is hidden (ignored).
HIDDEN_QUOTE = "(a message from an ignored user)"


def _first_line(text: str, limit: int = 120) -> str:
    line = text.split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _bundled_thread_count(event: RoomEvent) -> int:
    relations = event.unsigned.get("m.relations")
    if not isinstance(relations, dict):
        return 0
    thread = relations.get("m.thread")
    count = thread.get("count") if isinstance(thread, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0
