"""The services of a :class:`~.client.MatrixClient`: how each is built, and when.

Each service is built with the client's :class:`~.core.Core` and the few other services
or callables it uses (never the client). Most are made on first use (:class:`~.core.Lazy`):
the client stops only those it made. :class:`ClientServices` is a base class of
:class:`~.client.MatrixClient`; it declares what it needs of the client below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..net.http import HomeserverConnection
from ..protocol.room_state import PowerLevels, RoomSummary
from ..store.cache import Cache, OutboxEntry
from .core import Core, Lazy
from .dbthread import DatabaseThread
from .devices import DeviceService
from .encryption import Encryption
from .joins import JoinQueue
from .notifications import NotificationService
from .presence import PresenceService
from .read_receipts import ReadReceipts
from .room_admin import RoomAdmin
from .room_view import RoomView
from .secrets import SecretStore
from .send_queue import EncryptionUnavailable, NotJoined, NotReady, SendQueue
from .server_clock import ServerClock
from .spaces import SpaceService
from .storage import StorageHealth
from .sync import SyncLoop
from .threads import ThreadService
from .typing_notices import TypingNotices
from .uia import ApprovalPrompt, PasswordPrompt
from .updates import RoomListChanged, Update
from .uploads import UploadService

if TYPE_CHECKING:
    # Imported when first made (issue 13: the first painted room list needs none of them).
    from .backup import KeyBackup
    from .cross_signing import CrossSigningService
    from .directory import DirectoryBrowser
    from .identity import GetMeta, IdentityService, SetMeta
    from .recovery import Recovery
    from .search import SearchService
    from .verification import VerificationService

__all__ = ["ClientServices"]


class ClientServices:
    """Builds, holds and stops the client's services (see the module documentation)."""

    if TYPE_CHECKING:
        # What the services are built from: defined by MatrixClient.
        core: Core
        connection: HomeserverConnection
        secrets: SecretStore
        ask_password: PasswordPrompt | None
        approve_in_browser: ApprovalPrompt | None
        server_clock: ServerClock
        storage: StorageHealth
        sync_loop: SyncLoop | None
        send_queue: SendQueue
        rooms: dict[str, RoomSummary]
        views: dict[str, RoomView]
        db: DatabaseThread
        cache: Cache

        @property
        def user_id(self) -> str: ...

        @property
        def sync_mode(self) -> str: ...

        def publish(self, update: Update) -> None: ...

        def notify(self, level: str, text: str) -> None: ...

        async def fetch_members(self, room_id: str) -> list[dict[str, Any]]: ...

        async def note_joined(self, room_id: str) -> None: ...

        async def mark_read(
            self, room_id: str, event_id: str, thread_id: str | None = None
        ) -> None: ...

        def _show_decrypted(self, redecrypted: dict[str, dict[str, dict[str, Any]]]) -> None: ...

        def _ignored_changed(self) -> None: ...

        async def create_room(self, body: dict[str, Any]) -> str: ...

        async def leave(self, room_id: str, reason: str | None = None) -> None: ...

        async def forget(self, room_id: str) -> None: ...

    def _make_services(self, crypto_backend: str | None) -> None:
        core = self.core
        self.encryption = Encryption(
            core,
            self.secrets,
            fetch_members=self.fetch_members,
            clock=self.server_clock.now_ms,
            backend=crypto_backend,
            storage=self.storage,
        )
        password = lambda: self.ask_password  # noqa: E731 (the UI sets it later)
        cross_signing_changed = lambda: self.cross_signing.refresh_soon()  # noqa: E731
        self._spaces = Lazy(lambda: SpaceService(core))
        self._joins = Lazy(lambda: JoinQueue(core, self.spaces, note_joined=self.note_joined))
        self._identity = Lazy(lambda: _identity_service(core))
        self._backup = Lazy(self._new_backup)
        self._recovery = Lazy(self._new_recovery)
        self._devices = Lazy(
            lambda: DeviceService(
                core,
                self.encryption,
                password_prompt=password,
                cross_signing_changed=cross_signing_changed,
                trust_changed=self._backup_trust_changed,
            )
        )
        self._verification = Lazy(lambda: self._new_verification(cross_signing_changed))
        self._cross_signing = Lazy(lambda: self._new_cross_signing(password))
        self._search = Lazy(self._new_search)
        self._receipts = Lazy(
            lambda: ReadReceipts(
                core.connection,
                core.cache,
                core.db,
                self.publish,
                rooms=lambda: self.rooms,
                shown_events=self._shown_events,
            )
        )
        self._presence = Lazy(
            lambda: PresenceService(
                core.connection, core.cache, core.db, self.publish, user_id=self.user_id
            )
        )
        self._typing = Lazy(lambda: TypingNotices(core))
        self._threads = Lazy(
            lambda: ThreadService(
                core.connection,
                core.db,
                core.cache,
                self.publish,
                user_id=self.user_id,
                decrypt=self.encryption.fetched_forms,
                enqueue=self.send_queue.enqueue,
                mark_read=lambda room_id, event_id, thread_id: self.mark_read(
                    room_id, event_id, thread_id=thread_id
                ),
                hidden_sender=self.notifications.is_ignored,
                ready=lambda: self.encryption.ready(),
            )
        )
        self._notifications = Lazy(self._new_notifications)
        self._admin = Lazy(lambda: RoomAdmin(core, self))
        self._uploads = Lazy(
            lambda: UploadService(
                core.connection,
                core.cache,
                core.db,
                self.publish,
                rooms=lambda: self.rooms,
                finish=self._finish_upload,
                notify=self.notify,
            )
        )

    async def _load_services(self) -> None:
        """What the room list shows besides the summaries (unread, muted, typing, presence)."""
        await self.typing.load()
        await self.presence.load()
        await self.receipts.load()
        await self.threads.load()
        await self.notifications.load()

    # The services below are imported when first made, not at start.

    def _new_backup(self) -> KeyBackup:
        from .backup import KeyBackup

        return KeyBackup(
            self.core,
            self.encryption,
            self.devices,
            sync_loop=lambda: self.sync_loop,
            suggest_recovery=lambda: self.recovery.suggest(),
        )

    def _new_recovery(self) -> Recovery:
        from .recovery import Recovery

        return Recovery(
            self.core,
            self.encryption,
            self.backup,
            self.devices,
            self.cross_signing,
            self.secrets,
            show_decrypted=self._show_decrypted,
        )

    def _new_verification(self, cross_signing_changed: Callable[[], None]) -> VerificationService:
        from .verification import VerificationService

        return VerificationService(
            self.core,
            self.encryption,
            self.devices,
            cross_signing_changed=cross_signing_changed,
            create_dm=lambda user_id: self.admin.create_dm(user_id),
            wait_for_room=lambda room_id, timeout: self.joins.wait_for_room(room_id, timeout),
        )

    def _new_cross_signing(
        self, password: Callable[[], PasswordPrompt | None]
    ) -> CrossSigningService:
        from .cross_signing import CrossSigningService

        return CrossSigningService(
            self.core,
            self.encryption,
            self.devices,
            password_prompt=password,
            approve_prompt=lambda: self.approve_in_browser,
            verify_own_devices=lambda: self.verification.verify_own_devices(),
            trust_changed=self._backup_trust_changed,
        )

    def _new_search(self) -> SearchService:
        from .search import SearchService

        return SearchService(
            self.cache,
            self.db,
            self.connection,
            rooms=lambda: self.rooms,
            decrypt=self.encryption.fetched_forms,
            ignored=lambda: self.notifications.ignored,
            ready=lambda: self.encryption.ready(),
        )

    def _new_notifications(self) -> NotificationService:
        service = NotificationService(
            self.cache,
            self.db,
            self.connection,
            self.publish,
            user_id=self.user_id,
            shown_forms=self.encryption.shown_forms,
            rooms=lambda: self.rooms,
            on_ignored_changed=self._ignored_changed,
            # Synapse's sliding sync sends 0 for every room's counts: count them all here.
            count_all=lambda: self.sync_mode == "sliding sync",
        )
        service.decrypt = self._decrypt_fetched
        service.on_recount = self._recounted
        return service

    def _decrypt_fetched(self, room_id: str, events: list[dict[str, Any]]) -> object:
        """(database thread) Decrypt back-filled events as they are stored."""
        return self.encryption.fetched_forms(room_id, events) if self.encryption.available else None

    def _recounted(self, summary: RoomSummary, threads: dict[str, tuple[int, int]]) -> None:
        """A room counted again once its history came (sliding sync)."""
        if summary.room_id not in self.rooms:
            return
        self.rooms[summary.room_id] = summary
        self.publish(RoomListChanged(tuple(self.rooms.values()), frozenset({summary.room_id})))
        self.threads.counted(summary.room_id, threads)

    def _backup_trust_changed(self) -> None:
        # Only a backup already running cares (it rechecks whether it still trusts its version).
        if self._backup.made is not None:
            self._backup.made.trust_changed()

    def _shown_events(self, room_id: str) -> list[str]:
        view = self.views.get(room_id)
        items = view.model.items if view is not None else ()
        return [i.event_id for i in items if i.event_id and not i.is_local_echo]

    def open_power_levels(self, room_id: str) -> PowerLevels | None:
        """The power levels of an open room (what its view shows), else ``None``."""
        view = self.views.get(room_id)
        return view.power_levels if view is not None else None

    @property
    def spaces(self) -> SpaceService:
        """The space graph and hierarchies (engine/spaces.py), created on first use."""
        return self._spaces.get()

    @property
    def identity(self) -> IdentityService:
        """The identity server: find and invite people by email (engine/identity.py)."""
        return self._identity.get()

    @property
    def joins(self) -> JoinQueue:
        """The join queue (engine/joins.py), created on first use."""
        return self._joins.get()

    @property
    def backup(self) -> KeyBackup:
        """Server-side key backup: uploads every room key to a trusted backup (engine/backup.py)."""
        return self._backup.get()

    @property
    def recovery(self) -> Recovery:
        """Recovery key, secret storage, restore, encryption health (engine/recovery.py)."""
        return self._recovery.get()

    @property
    def devices(self) -> DeviceService:
        """Our devices, anyone's devices and identity, trust for the UI (engine/devices.py)."""
        return self._devices.get()

    @property
    def verification(self) -> VerificationService:
        """Interactive verification flows (engine/verification.py)."""
        return self._verification.get()

    @property
    def cross_signing(self) -> CrossSigningService:
        """This session's cross-signing: set up, or ask to be verified (engine/cross_signing.py)."""
        return self._cross_signing.get()

    @property
    def search(self) -> SearchService:
        """The local full-text index and the server's /search (engine/search.py)."""
        return self._search.get()

    @property
    def receipts(self) -> ReadReceipts:
        """Read receipts and the fully-read marker (engine/read_receipts.py)."""
        return self._receipts.get()

    @property
    def presence(self) -> PresenceService:
        """Others' presence, and ours from the terminal's focus (engine/presence.py)."""
        return self._presence.get()

    @property
    def typing(self) -> TypingNotices:
        """Our typing notices to the room being written in (engine/typing_notices.py)."""
        return self._typing.get()

    @property
    def threads(self) -> ThreadService:
        """Open threads, thread lists, unread counts per thread (engine/threads.py)."""
        return self._threads.get()

    @property
    def notifications(self) -> NotificationService:
        """Push rules, local unread counts of encrypted rooms, ignored users (engine/notifications.py)."""
        return self._notifications.get()

    @property
    def admin(self) -> RoomAdmin:
        """Creating rooms, permissions, moderation (engine/room_admin.py)."""
        return self._admin.get()

    @property
    def uploads(self) -> UploadService:
        """Files streamed to the server with progress, resumed after a restart (engine/uploads.py)."""
        return self._uploads.get()

    async def _prepare_send(self, entry: OutboxEntry) -> tuple[str, dict[str, Any]]:
        """What the send queue sends for ``entry``: encrypted for an encrypted room, never in clear."""
        summary = self.rooms.get(entry.room_id)
        if summary is None:
            # A room we have not synced yet (just created or joined) may be encrypted:
            # wait for its state rather than risk sending in clear.
            raise NotReady("waiting for the room to sync")
        if summary.membership != "join":
            raise NotJoined(f"you are not in this room ({summary.membership})")
        if summary.encrypted:
            # Never send to an encrypted room in clear: encrypt, or fail visibly.
            await self.encryption.ready()
            if not self.encryption.available:
                raise EncryptionUnavailable(
                    self.encryption.error or "end-to-end encryption is not available"
                )
            content = await self.encryption.encrypt(entry.room_id, entry.event_type, entry.content)
            self.backup.wake()  # a room key of our own may have been made
            return "m.room.encrypted", content
        return entry.event_type, entry.content

    async def _finish_upload(
        self, upload_id: str, room_id: str, content: dict[str, Any]
    ) -> OutboxEntry | None:
        """Queue an uploaded file's message and drop its upload, in one transaction."""
        from ..store.uploads import uploads_finish
        from .send_queue import new_transaction_id

        entry = await self.db.run(
            uploads_finish,
            self.cache,
            upload_id,
            new_transaction_id(),
            room_id,
            "m.room.message",
            content,
        )
        if entry is not None:
            self.send_queue.idle.clear()
            self.send_queue.wake()
            view = self.views.get(room_id)
            if view is not None:
                view.add_local_echo(entry)
        return entry

    def browse_directory(
        self, servers: Sequence[str | None] = (), search: str = "", **options: Any
    ) -> DirectoryBrowser:
        """A browser over the published room directories of ``servers`` (``None``: ours, the default)."""
        from .directory import DirectoryBrowser

        return DirectoryBrowser(self, servers, search=search, **options)

    async def _stop_services(self) -> None:
        if self._joins.made is not None:
            await self._joins.made.stop()
        if self._spaces.made is not None:
            self._spaces.made.stop()
        if self._identity.made is not None:
            await self._identity.made.aclose()
        for lazy in (
            self._verification,
            self._cross_signing,
            self._devices,
            self._recovery,
            self._typing,
            self._presence,
        ):
            if lazy.made is not None:
                lazy.made.stop()


def _identity_service(core: Core) -> IdentityService:
    from .identity import IdentityService

    return IdentityService(core.connection, core.user_id, *_meta(core))


def _meta(core: Core) -> tuple[GetMeta, SetMeta]:
    """Reading and writing the cache's meta table, on the database thread."""

    async def get_meta(key: str) -> str | None:
        value: str | None = await core.db.run(core.cache.get_meta, key)
        return value

    async def set_meta(key: str, value: str) -> None:
        await core.db.run(core.cache.set_meta, key, value)

    return get_meta, set_meta
