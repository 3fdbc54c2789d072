"""Moving a device's crypto state from python-olm (libolm) pickles to vodozemac.

vodozemac reads libolm pickles of accounts, Olm sessions and inbound group
sessions; it cannot read libolm's outbound group sessions (nor can python-olm read
anything vodozemac wrote). :func:`prepare_store` runs when the machine opens, in
the caller's transaction, before the machine is built:

- the store records the backend whose format its pickles are in
  (:meth:`~.store_api.CryptoStore.load_pickle_format`);
- opening with vodozemac a store made by python-olm (or one that records no
  format: every store before this module) re-pickles the account, every Olm
  session and every inbound group session in vodozemac's format, and drops the
  outbound group sessions (each room's next message starts a new session: the
  machine rotates when a room has none), then records ``vodozemac``;
- opening with python-olm a store made by vodozemac fails with
  :class:`PickleFormatError`: that way back does not exist.

Crash safety: everything happens in the caller's transaction, so a process killed
during the migration leaves the store as it was, and the next start migrates
again. Even a store left half-migrated (a caller that commits in between) opens:
the vodozemac backend reads both formats, pickle by pickle, and re-pickling a
vodozemac pickle is a no-op. A pickle is rewritten only once it loaded: an
account or Olm session that does not load (wrong key, damage) stops the migration
with :class:`~.backend.PickleError` (the transaction rolls back); an inbound
session that does not load is left as it was (it did not decrypt before either).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .backend import CryptoBackend, PickleError
from .store_api import CryptoStore

__all__ = ["MigrationReport", "PickleFormatError", "prepare_store"]

log = logging.getLogger(__name__)

#: The format stores had before formats were recorded (python-olm was the only default).
LEGACY_FORMAT = "olm"


class PickleFormatError(RuntimeError):
    """The store's pickles are in a format the chosen backend cannot read."""


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What :func:`prepare_store` did."""

    #: The format the pickles were in (``None``: a new, empty store).
    source: str | None
    target: str
    #: Pickles rewritten in the target's format (account, Olm and inbound sessions).
    migrated: int = 0
    #: Outbound group sessions dropped (rooms rotate to a new session).
    dropped_outbound: int = 0

    @property
    def changed(self) -> bool:
        return self.migrated > 0 or self.dropped_outbound > 0


def prepare_store(
    store: CryptoStore,
    backend: CryptoBackend,
    pickle_key: bytes,
    *,
    step: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Make ``store``'s pickles readable by ``backend``; call inside a transaction.

    ``step`` is called after each pickle rewritten (tests interrupt there).
    """
    target = backend.name
    recorded = store.load_pickle_format()
    account = store.load_account()
    if account is None:
        # A new device (or one whose account was never saved): nothing to convert.
        if recorded != target:
            store.save_pickle_format(target)
        return MigrationReport(None, target)
    source = recorded or LEGACY_FORMAT
    if source == target:
        if recorded is None:
            store.save_pickle_format(target)
        return MigrationReport(source, target)
    if target != "vodozemac":
        raise PickleFormatError(
            f"this device's keys are stored in {source}'s format, which {target} cannot read"
        )
    report = _to_vodozemac(store, backend, pickle_key, source, step or (lambda _: None))
    store.save_pickle_format(target)
    log.info(
        "crypto store migrated from %s to %s: %d pickles, %d outbound sessions dropped",
        source,
        target,
        report.migrated,
        report.dropped_outbound,
    )
    return report


def _to_vodozemac(
    store: CryptoStore,
    backend: CryptoBackend,
    key: bytes,
    source: str,
    step: Callable[[str], None],
) -> MigrationReport:
    migrated = 0
    account = store.load_account()
    assert account is not None
    pickle = backend.account_from_pickle(account["pickle"], key).pickle(key)
    store.save_account({**account, "pickle": pickle})
    migrated += 1
    step("account")
    for olm in store.list_olm_sessions():
        pickle = backend.session_from_pickle(olm["pickle"], key).pickle(key)
        store.save_olm_session({**olm, "pickle": pickle})
        migrated += 1
        step("olm")
    for inbound in store.list_inbound_group_sessions():
        try:
            session = backend.inbound_group_session_from_pickle(inbound["pickle"], key)
        except PickleError:
            # One damaged room key must not lock the device out of all the others: it is
            # left as it is (it did not decrypt before either) and reported.
            log.warning("an inbound session could not be read; left as it was")
            continue
        store.save_inbound_group_session({**inbound, "pickle": session.pickle(key)})
        migrated += 1
        step("inbound")
    dropped = 0
    for outbound in store.list_outbound_group_sessions():
        try:
            backend.outbound_group_session_from_pickle(outbound["pickle"], key)
        except PickleError:
            store.delete_outbound_group_session(outbound["room_id"])
            dropped += 1
            step("outbound")
    return MigrationReport(source, backend.name, migrated, dropped)
