"""The engine's facade: one logged-in account, headless.

:class:`MatrixClient` logs in (or restores a saved session), opens the cache,
runs the sync loop and the send queue as asyncio tasks, and publishes
:mod:`~tui_client.engine.updates` to its listeners. The UI, the demo bot and the
tests all drive it the same way; it never imports Textual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Self

from ..net.http import HomeserverConnection
from ..protocol import oauth
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.oauth import TokenResponse
from ..protocol.room_state import RoomSummary
from ..store.cache import Cache, IngestResult, OutboxEntry, PendingJoin, StoredEvent
from ..store.encrypted_db import shred_database
from ..store.repair import RepairReport, open_checked
from . import gc_policy
from .attachments import save_attachment
from .cache_damage import CacheDamage
from .cache_key import CACHE_KEY, cache_key
from .core import Core
from .dbthread import DatabaseThread
from .encryption import CryptoResult
from .notices import say_once
from .oauth import OAuthLogin, OAuthTokens, remove_saved
from .paths import profile_dir
from .room_commands import RoomCommands
from .room_view import RoomView
from .secrets import SecretStore
from .send_queue import SendQueue
from .server_clock import ServerClock
from .services import ClientServices
from .session import (
    CACHE_FILE,
    CACHE_FILE_ENDINGS,
    SESSION_FILE,
    LoginError,
    SessionInfo,
    load_session,
    oauth_login,
    password_login,
    saved_login,
    wipe_profile,
    write_private_json,
)
from .storage import StorageHealth, StorageUnavailable, storage_problem
from .sync import SyncLoop, SyncSource, SyncV2Source
from .sync_choice import SyncSourceChoice
from .uia import ApprovalPrompt, PasswordPrompt
from .updates import (
    BatchCommitted,
    Notice,
    RoomListChanged,
    SessionEnded,
    SyncState,
    SyncStatus,
    TypingChanged,
    Update,
)

__all__ = [
    "CACHE_FILE",
    "CACHE_FILE_ENDINGS",
    "SESSION_FILE",
    "LoginError",
    "MatrixClient",
    "SessionInfo",
    "write_private_json",
]

log = logging.getLogger(__name__)

Listener = Callable[[Update], None]


class MatrixClient(ClientServices, RoomCommands, SyncSourceChoice):
    """A logged-in account: cache, sync, send queue, open rooms."""

    def __init__(
        self,
        info: SessionInfo,
        access_token: str,
        folder: Path,
        secrets: SecretStore,
        *,
        transport: Any = None,
        sync_source: Callable[[HomeserverConnection], SyncSource] | None = None,
        long_poll_ms: int = 30_000,
        crypto_backend: str | None = None,
    ) -> None:
        self.info = info
        self.folder = folder
        self.secrets = secrets
        self.connection = HomeserverConnection(info.homeserver, access_token, transport=transport)
        #: The OAuth session's tokens (refreshed as they expire), or None after a password login.
        self.oauth: OAuthTokens | None = OAuthTokens.load(self.connection, secrets, folder)
        if self.oauth is not None:
            self.connection.token_source = self.oauth
            self.oauth.on_lost = self._on_oauth_lost
        key = cache_key(secrets, folder / CACHE_FILE)
        self.db = DatabaseThread()
        try:
            self.cache: Cache
            #: What a damaged cache lost when it was rebuilt at this open (store/repair.py).
            self.cache_repair: RepairReport | None
            self.cache, self.cache_repair = self.db.call(
                open_checked, folder / CACHE_FILE, own_user_id=info.user_id, key=key
            )
        except BaseException as error:
            self.db.shutdown()
            problem = storage_problem(error)
            if problem is not None:  # a migration on a full disk: nothing was changed
                raise StorageUnavailable(problem) from error
            raise
        self.rooms: dict[str, RoomSummary] = {}
        #: What the services are built with (engine/core.py), instead of this whole client.
        self.core = Core(
            self.connection,
            self.cache,
            self.db,
            self.publish,
            self.subscribe,
            self.notify,
            info.user_id,
            info.device_id,
            lambda: self.rooms,
        )
        # The last committed next_batch, kept here so the loop never reads the database.
        self.sync_token: str | None = None
        # The room the user had open last time (reopened at start).
        self.last_room: str | None = None
        self._unfinished_joins: list[PendingJoin] = []
        self.views: dict[str, RoomView] = {}
        #: Who types in each room where someone does (as last published, the ignored left out).
        self.typing_in: dict[str, tuple[str, ...]] = {}
        self.sync_state = SyncState(SyncStatus.STARTING)
        self._listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._source_factory = sync_source
        self._source: SyncSource = (sync_source or self._v2_source)(self.connection)
        if isinstance(self._source, SyncV2Source):
            self._source.presence = lambda: self.presence.sync_value
        self._long_poll_ms = long_poll_ms
        self.sync_loop: SyncLoop | None = None
        self._sliding_allowed = True
        #: Whether the cache can be written (a full disk, a read-only folder: engine/storage.py).
        self.storage = StorageHealth(self.db.run, self.cache.probe_write, self.publish)
        self.db.on_storage_problem = self.storage.report
        #: A damaged cache found while running (engine/cache_damage.py).
        self.damage = CacheDamage(
            self.db, self.cache, self.storage, self.publish, folder / CACHE_FILE, key
        )
        self.send_queue = SendQueue(
            self.cache,
            self.db,
            self.connection,
            self._on_send_progress,
            prepare=self._prepare_send,
            storage=self.storage,
        )
        #: The server's time (local time corrected by what events say): a local clock
        #: hours off does not upset verification or key rotation (engine/server_clock.py).
        self.server_clock = ServerClock()
        self._indexing: asyncio.Future[None] | None = None
        #: :meth:`open_services` done (then :meth:`start` may run), and :meth:`start` called.
        self._services_open, self._started = False, asyncio.Event()
        #: :meth:`close`/:meth:`logout` began: an open under way ends quietly, no :meth:`start`.
        self.closed = False
        self._make_services(crypto_backend)
        self.ended: SessionEnded | None = None
        self.connection.on_rate_limited = self._on_rate_limited
        #: Asks the user for their password when the server wants it (user-interactive
        #: auth, engine/uia.py); the UI sets it. ``None``: such requests are refused.
        self.ask_password: PasswordPrompt | None = None
        #: Opens the account page where the user approves a request the server guards with
        #: ``m.oauth`` (a cross-signing reset after an OAuth login); the UI sets it.
        self.approve_in_browser: ApprovalPrompt | None = None

    # -- identity -------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        """Our user ID."""
        return self.info.user_id

    @property
    def device_id(self) -> str:
        """This device's ID."""
        return self.info.device_id

    # -- sessions -------------------------------------------------------------------

    @classmethod
    async def login(
        cls,
        user_id: str,
        password: str,
        *,
        homeserver: str | None = None,
        profile: str = "default",
        base_dir: Path | None = None,
        transport: Any = None,
        device_name: str | None = None,
        **options: Any,
    ) -> Self:
        """Log in with a password (engine/session.py); the homeserver is discovered from the user ID unless given."""
        info, token, folder, secrets = await password_login(
            user_id,
            password,
            homeserver=homeserver,
            profile=profile,
            base_dir=base_dir,
            transport=transport,
            device_name=device_name,
        )
        return cls(info, token, folder, secrets, transport=transport, **options)

    @classmethod
    async def login_oauth(
        cls,
        flow: OAuthLogin,
        tokens: TokenResponse,
        *,
        profile: str = "default",
        base_dir: Path | None = None,
        **options: Any,
    ) -> Self:
        """Turn an OAuth login's tokens into a session (engine/session.py): ask who we are, save, open."""
        info, token, folder, secrets = await oauth_login(
            flow, tokens, profile=profile, base_dir=base_dir
        )
        return cls(info, token, folder, secrets, transport=flow.transport, **options)

    def account_page(self, action: str | None = None) -> str | None:
        """The account management URL of an OAuth login (with ``action=``: ``sessions``,
        ``profile``, ``session``, ``cross_signing_reset``), or None without one."""
        if self.oauth is None:
            return None
        try:
            metadata = self.oauth.auth_metadata
            device = self.device_id if action == "session" else None
            return oauth.account_management_url(metadata, action, device)
        except oauth.MetadataError:
            return None

    @classmethod
    def restore(
        cls,
        *,
        profile: str = "default",
        base_dir: Path | None = None,
        transport: Any = None,
        **options: Any,
    ) -> Self | None:
        """The saved session of a profile, or None if there is none (or no token)."""
        saved = saved_login(profile, base_dir)
        if saved is None:
            return None
        info, token, folder, secrets = saved
        return cls(info, token, folder, secrets, transport=transport, **options)

    @staticmethod
    def saved_session(profile: str = "default", base_dir: Path | None = None) -> SessionInfo | None:
        """The saved session's identity, even if its token is gone (for a soft-logout prompt)."""
        return load_session(profile_dir(profile, base_dir))

    # -- listeners ------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Receive every update; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, update: Update) -> None:
        """Send an update to every listener (a failing listener is logged, not fatal)."""
        for listener in list(self._listeners):
            try:
                listener(update)
            except Exception:
                log.exception("update listener failed")

    def notify(self, level: str, text: str) -> None:
        """Tell the user something."""
        self.publish(Notice(level, text))

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """:meth:`open_cache` then :meth:`open_services` (the UI paints in between); no network
        I/O. A damaged cache gives what reads back (engine/cache_damage.py)."""
        await self.open_cache()
        await self.open_services()

    async def open_cache(self) -> None:
        """What the first painted room list needs: the summaries, published, and how the list
        shows them. Sending and decrypting wait for the machine (:meth:`Encryption.ready`)."""
        self.encryption.expect_open()
        await self._until_closed(self.damage.survive(self._open_cache()))

    async def _open_cache(self) -> None:
        self.rooms = await self.db.run(self.cache.load_summaries)
        self.last_room = await self.db.run(self.cache.get_meta, "last_room")
        self._unfinished_joins = await self.db.run(self.cache.joins_pending)
        self.publish(RoomListChanged(tuple(self.rooms.values()), frozenset(self.rooms)))
        if self.secrets.warning:
            await say_once(self.core, "no_keyring", "warning", self.secrets.warning)
        if self.cache_repair is not None:
            self.notify(
                "warning" if self.cache_repair.crypto_intact else "error",
                self.cache_repair.describe(),
            )
        await self._load_services()

    async def open_services(self) -> None:
        """The crypto machine, devices, the sync source and its token: what :meth:`start` needs."""
        await self._until_closed(self.damage.survive(self._open_services()))
        self._services_open = not self.closed

    async def _until_closed(self, work: Awaitable[None]) -> None:
        """Await a step of the open; one that fails because the client was closed meanwhile
        (a rebuild asked for while it opened: no database thread) ends quietly."""
        try:
            await work
        except Exception:
            if not self.closed:
                raise
            log.info("the client was closed while it opened", exc_info=True)

    async def _open_services(self) -> None:
        await self.encryption.open()
        await self.devices.open()
        if self._source_factory is None:
            await self._choose_sync_source(ask=False)
        self.sync_token = await self.db.run(self._source.load_token, self.cache.get_meta)

    def start(self) -> None:
        """Start the sync loop and the send queue (after :meth:`open_services`: a batch ingested
        without the crypto machine would drop its room keys)."""
        if self._tasks:
            return
        if self.closed:  # closed while it opened: its database thread is gone
            return
        if not self._services_open:
            raise RuntimeError("MatrixClient.start() before open_services()")
        self._started.set()
        self.sync_loop = self._new_sync_loop()
        self._tasks = [
            asyncio.ensure_future(self.sync_loop.run()),
            asyncio.ensure_future(self.send_queue.run()),
            asyncio.ensure_future(self.encryption.run()),
            asyncio.ensure_future(self.backup.run()),
            asyncio.ensure_future(self.uploads.resume()),
            asyncio.ensure_future(self._recheck_sliding_sync()),
            asyncio.ensure_future(self.damage.check_after(self.sync_loop.first_batch_done)),
            # Sliding sync carries no presence: ours said and the open rooms' members read apart.
            asyncio.ensure_future(
                self.presence.keep_alive(
                    lambda: self.sync_mode == "sliding sync",
                    lambda: [
                        m.user_id
                        for view in list(self.views.values())
                        for m in view.members.joined()
                    ],
                )
            ),
        ]
        if self._unfinished_joins:
            self._tasks.append(asyncio.ensure_future(self._resume_joins(self.sync_loop)))
        self.cross_signing.start()

    async def _resume_joins(self, sync_loop: SyncLoop) -> None:
        """Make the joins the last run left queued (once the room list is fresh)."""
        await sync_loop.first_batch_done.wait()
        pending, self._unfinished_joins = self._unfinished_joins, []
        restored = self.joins.restore(pending)
        if restored:
            count = len(restored)
            self.notify(
                "info",
                f"Resuming {count} join{'s' if count != 1 else ''} left unfinished last time",
            )

    async def stop(self) -> None:
        """Stop sync and sending (in-flight requests are cancelled; nothing is lost)."""
        self.storage.stop()
        if self.sync_loop is not None:
            self.sync_loop.stop()
        if self._uploads.made is not None:
            await self._uploads.made.stop()  # still queued: the next start resumes them
        self.send_queue.stop()
        self.encryption.stop()
        tasks = [*self._tasks, *([self._indexing] if self._indexing is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        self._indexing = None
        for view in self.views.values():
            view.close()
        # The cancelled loop could not say so itself.
        if self.sync_state.status not in (
            SyncStatus.STOPPED,
            SyncStatus.LOGGED_OUT,
            SyncStatus.STARTING,
        ):
            self._on_sync_state(
                SyncState(SyncStatus.STOPPED, last_success=self.sync_state.last_success)
            )

    async def close(self) -> None:
        """Stop and release everything (the cache stays on disk)."""
        self.closed = True
        await self.stop()
        await self._stop_services()
        await self.connection.aclose()
        await self.db.run(self.cache.close)
        self.db.shutdown()

    async def wait_synced(self, timeout: float = 30.0) -> None:
        """Wait until the first sync batch after start (which the UI calls after the first paint) is committed."""
        async with asyncio.timeout(timeout):
            if self.sync_loop is None:
                if not self.encryption.open_expected:
                    raise RuntimeError("sync is not running (the client was not opened)")
                await self._started.wait()
            assert self.sync_loop is not None
            await self.sync_loop.first_batch_done.wait()

    async def logout(self) -> None:
        """Invalidate the token on the server, then remove local secrets and the cache."""
        self.closed = True
        await self.stop()
        await self._stop_services()
        if self.oauth is not None:
            # The server's /logout belongs to the sign-in service: revoking the tokens
            # ends the session there, and it deletes the device (RFC 7009).
            await self.oauth.revoke_all()
            remove_saved(self.folder)
        else:
            try:
                await self.connection.send(api.logout(), wait_on_rate_limit=False)
            except MatrixError as error:
                if not error.is_unknown_token:
                    log.warning("logout request failed: %s", error)
            except NetworkError as error:
                log.warning("logout request failed: %s", error)
        await self.connection.aclose()
        await self.db.run(shred_database, self.folder / CACHE_FILE, self.cache.close)
        self.db.shutdown()
        self.secrets.delete_all(["access_token", "refresh_token", "pickle_key", CACHE_KEY])
        wipe_profile(self.folder)
        self.ended = SessionEnded(False, "Logged out.", by_user=True)
        self.publish(self.ended)

    # -- sync -----------------------------------------------------------------------

    def _new_sync_loop(self) -> SyncLoop:
        return SyncLoop(
            self._source,
            self._commit_batch,
            get_token=lambda: self.sync_token,
            on_state=self._on_sync_state,
            on_unknown_token=self._on_unknown_token,
            long_poll_ms=self._long_poll_ms,
            storage=self.storage,
        )

    def _on_sync_state(self, state: SyncState) -> None:
        previous = self.sync_state.status
        self.sync_state = state
        self.publish(state)
        if state.status is SyncStatus.CONNECTED and previous is not SyncStatus.CONNECTED:
            self.send_queue.wake()

    def _on_oauth_lost(self, reason: str) -> None:
        log.warning("the OAuth session cannot be refreshed any more")

    async def _on_unknown_token(self, error: MatrixError) -> None:
        self.send_queue.stop()
        if not error.soft_logout:
            self.secrets.delete("access_token")
            self.secrets.delete("refresh_token")
            remove_saved(self.folder)
        self.ended = SessionEnded(error.soft_logout, self.sync_state.detail)
        self.publish(self.ended)

    def _on_rate_limited(self, seconds: float) -> None:
        self.notify("warning", f"Rate limited by the server; retrying in {seconds:.0f}s")

    def _ingest_raw(self, raw: bytes, initial: bool = False) -> IngestResult[CryptoResult]:
        # Decoding and storing a batch allocates hundreds of thousands of objects,
        # none of them cyclic garbage; letting the collector walk the growing heap
        # meanwhile costs ~20% of the time. It runs again once the batch is done.
        from .sync_ingest import ingest_response

        with gc_policy.paused():  # (it is process-wide; engine/gc_policy.py)
            result, batch = ingest_response(
                self._source, raw, self.core, self.encryption, self.server_clock, initial
            )
            self.presence.receive(batch.presence)
        crypto = result.hook_result or CryptoResult()
        # Push rules over the decrypted events: encrypted rooms get counts the server cannot make.
        self.notifications.on_batch(
            result,
            self.rooms,
            account_types=[e.get("type", "") for e in batch.account_data],
            decrypted=crypto.clear,
            redecrypted=crypto.redecrypted,
        )
        return result

    async def _commit_batch(self, raw: bytes) -> None:
        first = self.sync_loop is not None and self.sync_loop.batches == 0
        result = await self.db.run(self._ingest_raw, raw, self.sync_token is None)
        self._after_commit(result)
        self.presence.flush()
        if (result.new_events or result.trimmed_rooms) and (
            self._indexing is None or self._indexing.done()
        ):
            self._indexing = asyncio.ensure_future(self._index_messages())
        self.publish(
            BatchCommitted(
                {
                    room: tuple(s.event for s in stored)
                    for room, stored in result.new_events.items()
                },
                first,
            )
        )

    async def _index_messages(self) -> None:
        """Add the batch's messages to the search index, a slice per turn of the database
        thread (outside the batch's transaction: the index was most of a first sync)."""
        try:
            while await self.db.run(self.cache.index_pending):
                await asyncio.sleep(0)
        except Exception:
            log.exception("indexing messages for search failed (a search will try again)")

    def _after_commit(self, result: IngestResult[CryptoResult]) -> None:
        self.sync_token = result.next_batch
        crypto = result.hook_result or CryptoResult()
        for room_id, shown in crypto.clear.items():
            # Views get the decrypted (or explained) form of encrypted events.
            stored = result.new_events.get(room_id, [])
            result.new_events[room_id] = [
                StoredEvent(s.pos, shown.get(s.event.get("event_id", ""), s.event)) for s in stored
            ]
        self.encryption.wake()
        if crypto.room_keys:
            self.backup.wake()
        if crypto.secrets:
            self.backup.on_secrets(crypto.secrets)
            self.cross_signing.refresh_soon()
        if crypto.verifications:
            self.verification.on_sync(crypto.verifications)
        if result.changed_rooms:
            self.send_queue.wake()  # messages may be waiting for a room to sync
        if result.skipped_events:
            log.warning(
                "sync batch %s: skipped %d unusable events",
                result.next_batch,
                result.skipped_events,
            )
        self.rooms.update(result.changed_rooms)
        for room_id in result.removed_rooms:
            self.rooms.pop(room_id, None)
        if result.changed_rooms or result.removed_rooms:
            self.publish(
                RoomListChanged(
                    tuple(self.rooms.values()),
                    frozenset(result.changed_rooms) | frozenset(result.removed_rooms),
                )
            )
        for room_id, view in list(self.views.items()):
            if room_id in result.state_rooms:
                self._spawn(view.reload_state())
            if room_id in result.limited_rooms or room_id in result.trimmed_rooms:
                # A window in the middle of history (a search result, far scroll-back) stays
                # where the user put it (sliding sync fills history above an open room's
                # events as its subscription grows: reading the newest window again yanked
                # the user away from the result).
                self._spawn(view.reload(only_at_live_end=True))
            elif room_id in result.new_events:
                view.on_sync_events(result.new_events[room_id])
        self.threads.on_commit(result)
        for room_id, pairs in result.receipts.items():
            if room_id in self.views:
                self._spawn(self.views[room_id].apply_receipts(pairs))
        for room_id, users in result.typing.items():
            self._set_typing(room_id, (u for u in users if not self.notifications.is_ignored(u)))
        for room_id in result.removed_rooms:
            self.typing_in.pop(room_id, None)
        self._show_decrypted(crypto.redecrypted)
        self.notifications.check_ignored()
        self.notifications.after_commit()

    def _ignored_changed(self) -> None:
        """The ignore list changed (a sync brought it, or we set it): open rooms and
        threads are shown again from the cache, invites re-listed, typing re-said."""
        for view in list(self.views.values()):
            self._spawn(view.refilter())
        for room_id, users in list(self.typing_in.items()):
            self._set_typing(room_id, (u for u in users if not self.notifications.is_ignored(u)))
        if self._threads.made is not None:
            self._threads.made.refilter()
        self.publish(RoomListChanged(tuple(self.rooms.values()), frozenset(self.rooms)))

    def _set_typing(self, room_id: str, users: Iterable[str]) -> None:
        """Who types in a room, published only when it changed: a sync names rooms where
        nobody types (a first v2 sync, every room), no news if nobody was."""
        now = tuple(users)
        if now == self.typing_in.get(room_id, ()):
            return
        if now:
            self.typing_in[room_id] = now
        else:
            self.typing_in.pop(room_id, None)
        if room_id in self.views:
            self.views[room_id].typing = now
        self.publish(TypingChanged(room_id, now))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    def _show_decrypted(self, redecrypted: dict[str, dict[str, dict[str, Any]]]) -> None:
        for room_id, events in redecrypted.items():
            view = self.views.get(room_id)
            if view is not None:
                view.on_decrypted(events)
        if self._threads.made is not None:
            self._threads.made.on_decrypted(redecrypted)

    # -- rooms ----------------------------------------------------------------------

    def room_list(self) -> list[RoomSummary]:
        """Rooms the user is in or invited to, most recent activity first."""
        rooms = [
            r
            for r in self.rooms.values()
            if r.membership in ("join", "invite") and not self.notifications.hides_room(r)
        ]
        return sorted(rooms, key=lambda r: (-r.last_ts, r.display_name.casefold()))

    async def open_room(self, room_id: str) -> RoomView:
        """Open a room (loads its window from the cache); reuses an open view."""
        view = self.views.get(room_id)
        if view is None:
            view = self.new_view(room_id)
            view.typing = self.typing_in.get(room_id, ())
            self.views[room_id] = view
            from .sliding_sync import SlidingSyncSource

            if isinstance(self._source, SlidingSyncSource):
                self._source.resubscribe()  # its longer timeline now, not after the long-poll
            await view.load()
        return view

    def new_view(self, room_id: str) -> RoomView:
        """A view of a room, not loaded nor kept (:meth:`open_room` does both)."""
        return RoomView(
            self.core,
            room_id,
            self.encryption,
            hidden_sender=self.notifications.is_ignored,
            fetch_members=self.fetch_members,
            sliding=lambda: self.sync_mode == "sliding sync",
        )

    async def remember_room(self, room_id: str) -> None:
        """Note the room the user is looking at, to reopen it next time."""
        if room_id != self.last_room:
            self.last_room = room_id
            await self.db.run(self.cache.set_meta, "last_room", room_id)

    def close_room(self, room_id: str) -> None:
        """Forget the open view of a room."""
        view = self.views.pop(room_id, None)
        if view is not None:
            view.close()

    async def fetch_members(self, room_id: str) -> list[dict[str, Any]]:
        """The room's full member list from the server (lazy loading gives only those who spoke)."""
        data = await self.connection.send(api.members(room_id))
        chunk = data.get("chunk") if isinstance(data, dict) else None
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        await self.db.run(self.cache.add_member_events, room_id, events)
        return events

    async def enable_encryption(self, room_id: str) -> None:
        """Turn on end-to-end encryption in a room (it cannot be turned off)."""
        await self.connection.send(
            api.send_state(room_id, "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"})
        )

    async def export_room_keys(self, path: Path, passphrase: str) -> int:
        """Export every room key to ``path`` (standard format, encrypted with ``passphrase``)."""
        return await self.encryption.export_keys(path, passphrase)

    async def import_room_keys(self, path: Path, passphrase: str) -> tuple[int, int]:
        """Import room keys from an export file; returns (keys in the file, keys new to us)."""
        total, imported, redecrypted = await self.encryption.import_keys(path, passphrase)
        self._show_decrypted(redecrypted)
        if imported and self._backup.made is not None:
            self._backup.made.wake()  # the imported keys go to the key backup too
        return total, imported

    def _on_send_progress(
        self, entry: OutboxEntry, state: str, event_id: str | None, error: str | None
    ) -> None:
        view = self.views.get(entry.room_id)
        if view is not None:
            view.on_send_state(entry.txn_id, state, event_id, error)
        if self._threads.made is not None:
            self._threads.made.on_send_state(entry, state, event_id, error)

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> OutboxEntry:
        """Queue any message-like event."""
        if self._typing.made is not None and event_type == "m.room.message":
            self._typing.made.stopped()
        entry = await self.send_queue.enqueue(room_id, event_type, content)
        view = self.views.get(room_id)
        if view is not None:
            view.add_local_echo(entry)
        return entry

    async def retry_send(self, txn_id: str) -> None:
        """Send a failed message again (same transaction ID)."""
        await self.send_queue.retry(txn_id)
        for view in self.views.values():
            view.on_send_state(txn_id, "pending", None, None)

    async def discard_send(self, txn_id: str) -> None:
        """Drop a failed message."""
        await self.send_queue.discard(txn_id)
        for view in self.views.values():
            view.remove_local_echo(txn_id)

    async def save_attachment(self, event_id: str, folder: Path | None = None) -> Path:
        """Save a message's file (decrypted) to ``folder`` or the Downloads folder; see
        :func:`.attachments.save_attachment`."""
        return await save_attachment(self.core, self.encryption, event_id, folder)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> None:
        """Delete a message."""
        from .send_queue import new_transaction_id

        await self.connection.send(api.redact(room_id, event_id, new_transaction_id(), reason))

    async def mark_read(self, room_id: str, event_id: str, thread_id: str | None = None) -> None:
        """Mark ``event_id`` read, and fully read outside a thread (engine/read_receipts.py).

        The caller says which event the user has seen; nothing later is marked.
        """
        view = self.views.get(room_id)
        newest = view is not None and view.model.last_event_id() == event_id
        await self.receipts.mark_read(room_id, event_id, thread_id=thread_id, newest=newest)
