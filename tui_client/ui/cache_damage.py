"""A damaged cache found while the client runs (engine/cache_damage.py), as the user meets it.

The status line says "the cache is damaged: nothing new is saved" for as long as it
lasts; a dialog says what happened and offers the rebuild at once (Enter), which closes
the account and opens it again: store/repair.py copies the encryption keys, the unsent
messages and the settings to a new file and the rest comes back from the server, and the
notice it gives says what was kept and lost. Cancel leaves the client reading what it
can; the palette keeps "Rebuild the damaged cache", and the next start rebuilds it anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from textual.app import SystemCommand

from ..engine.client import MatrixClient
from ..engine.updates import CacheDamageFound
from ..protocol.sanitize import clean_line
from .app_interface import ClientApp
from .screens import security
from .screens.chat import chat_screen_of
from .screens.dialogs import ChoiceDialog, ConfirmDialog
from .screens.recovery import RestoreDialog
from .widgets.composer import Composer

__all__ = ["after_open", "commands", "offer_rebuild", "rebuild"]

log = logging.getLogger(__name__)

EXPLAINED = (
    "Rebuild it now? Your encryption keys and the messages you have not sent yet are kept "
    "(if they read back); rooms and messages are fetched again from the server; the damaged "
    "file is kept beside the new one. Cancel: go on reading what the cache still holds "
    "(nothing new is saved); it is rebuilt at the next start."
)


def offer_rebuild(app: ClientApp, update: CacheDamageFound) -> None:
    """Say the damage and offer the rebuild (once per client)."""
    client = app.client
    if client is None:
        return
    reason = clean_line(update.reason, 160)
    question = f"The local cache is damaged ({reason}). Nothing more is saved to it.\n\n{EXPLAINED}"

    def answer(now: bool | None) -> None:
        if now:
            app.run_worker(rebuild(app, client), group="rebuild-cache", exit_on_error=False)
        else:
            app.notify(
                "The cache is damaged: rebuilt at the next start, or now from the palette "
                "(Rebuild the damaged cache).",
                severity="warning",
                timeout=15,
                markup=False,
            )

    app.push_screen(ConfirmDialog(question, "Rebuild now"), answer)


async def rebuild(app: ClientApp, client: MatrixClient) -> None:
    """Close ``client`` and open its account again: the open rebuilds the marked cache."""
    if app.client is not client:
        return
    profile, base_dir = app.accounts.location_of(client)
    # What the user was reading and typing goes over to the new chat screen.
    chat = chat_screen_of(app)
    room = chat.current_room if chat is not None else None
    draft = chat.query_one(Composer).text if chat is not None else ""
    app.notify("Rebuilding the cache…", timeout=5, markup=False)
    await app._drop_client("")
    try:
        fresh = MatrixClient.restore(profile=profile, base_dir=base_dir, transport=app.transport)
    except Exception as error:
        log.exception("the cache could not be rebuilt")
        app.exit(
            return_code=1,
            message=f"tui_client could not rebuild its cache: {error}. Nothing else was changed; "
            "start it again.",
        )
        return
    if fresh is None:
        app._show_login("Log in again.")
        return
    await app._start(fresh)
    chat = chat_screen_of(app)
    if chat is None:
        return
    if draft:
        chat.query_one(Composer).text = draft
    # The rebuilt cache has its rooms once the first sync is in.
    for _ in range(600):
        if room is None or chat.current_room is not None or chat_screen_of(app) is not chat:
            return
        if room in fresh.rooms:
            chat.open_room(room)
            return
        await asyncio.sleep(0.1)


def commands(app: ClientApp, client: MatrixClient) -> Iterable[SystemCommand]:
    """The palette's entry while the cache is damaged."""
    if client.damage.reason is None:
        return
    yield SystemCommand(
        "Rebuild the damaged cache",
        "Keep the keys and unsent messages, fetch the rest again",
        lambda: app.run_worker(rebuild(app, client), group="rebuild-cache", exit_on_error=False),
    )


def after_open(app: ClientApp, client: MatrixClient) -> None:
    """Once the account is open (its queued updates shown first): what a rebuild at this
    open kept and lost, said if the chat screen was not there to say it (a rebuild asked
    for from the dialog), and, when encryption keys did not read back, the offer to restore
    them from the recovery key or a key file."""
    report = client.cache_repair
    if report is None:
        return

    def said() -> None:
        text = clean_line(report.describe())
        toasts = [n for n in app._notifications if n.message == text]
        if report.crypto_intact or app.client is not client:
            if not toasts:
                app.notify(
                    text,
                    severity="warning" if report.crypto_intact else "error",
                    timeout=30,
                    markup=False,
                )
            return
        # A dialog follows: the report is said in it, not in a toast drawn over it (an
        # 80x24 terminal has no room for both; the status line keeps the engine's notice).
        for toast in toasts:
            app._unnotify(toast)
        # The report says what was lost and what to do (it is the dialog's question).
        if report.account_lost:
            app.push_screen(
                ChoiceDialog(text, [("logout", "Log out…"), ("later", "Later")], uncovered=True),
                lambda choice: app.action_logout() if choice == "logout" else None,
            )
            return

        def chosen(choice: str | None) -> None:
            chat = chat_screen_of(app)
            if choice == "key":
                app.push_screen(RestoreDialog(client))
            elif choice == "file" and chat is not None:
                security.import_keys(chat)

        app.push_screen(
            ChoiceDialog(
                text,
                [
                    ("key", "Restore from recovery key"),
                    ("file", "Import a key file"),
                    ("later", "Later"),
                ],
                uncovered=True,
            ),
            chosen,
        )

    app.call_later(said)
