"""Opening files and links in the system's handler (``o``).

A file is fetched (decrypted in an encrypted room, its hash checked first) into a private
folder of this run (0700, made on first use under the user's cache folder, named by the
process ID, removed when the program exits; a run that crashed leaves its folder, which the
next start removes, see :func:`remove_stale_folders`), as a new file
readable by the user only (0600), and handed to the handler with its path. A link is handed
as it is. The handler is ``$BROWSER`` when set, else ``open`` on macOS, else ``xdg-open``;
it is started without a shell, its output discarded, and not waited for.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from ..crypto.attachments import decrypt_attachment
from ..protocol.media import parse_attachment
from .attachments import download, message_content

if TYPE_CHECKING:
    from .client import MatrixClient

__all__ = [
    "HandlerError",
    "fetch_to_private_file",
    "handler_command",
    "open_root",
    "open_with_handler",
    "private_folder",
    "remove_stale_folders",
]

_folder: Path | None = None
#: Handlers started and not yet ended (waited for in the background, so none is left a zombie).
_running: set[asyncio.Task[int]] = set()


class HandlerError(OSError):
    """No handler could be started (the text says why)."""


def open_root() -> Path:
    """Where the runs' private folders are: ``$TUI_CLIENT_OPEN_DIR`` if set, else ``open``
    in the user's cache folder (0700)."""
    override = os.environ.get("TUI_CLIENT_OPEN_DIR")
    root = Path(override) if override else Path(platformdirs.user_cache_dir("tui_client")) / "open"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process has that number now: left alone
    return True


def remove_stale_folders(root: Path | None = None) -> list[Path]:
    """Remove the private folders of runs that ended without removing theirs (a crash, a
    kill): those named after a process that no longer runs. Folders of running processes
    (another window of the client) are kept. Returns what was removed."""
    root = open_root() if root is None else root
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        pid_text = entry.name.split("-", 1)[0]
        if not pid_text.isdigit() or entry.is_symlink() or not entry.is_dir():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def private_folder() -> Path:
    """This run's private folder (0700), removed at exit (and at the next start after a
    crash). The first call also removes the folders crashed runs left."""
    global _folder
    if _folder is None or not _folder.is_dir():
        root = open_root()
        if _folder is None:
            remove_stale_folders(root)
        _folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        os.chmod(_folder, 0o700)
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def _write_private(name: str, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(dir=private_folder()))  # one folder per file: names never clash
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


async def fetch_to_private_file(client: MatrixClient, event_id: str) -> Path:
    """The attachment of a message, decrypted, in a new private file; raises as
    :func:`.attachments.save_attachment` does."""
    content = await message_content(client.core, client.encryption, event_id)
    attachment = parse_attachment(content)
    data = await download(client.connection, attachment)
    if attachment.encrypted is not None:
        data = await asyncio.to_thread(decrypt_attachment, data, attachment.encrypted)
    return await asyncio.to_thread(_write_private, attachment.filename, data)


def handler_command(
    environ: dict[str, str] | None = None, platform: str | None = None
) -> list[str]:
    """The command that opens a file or link: ``$BROWSER``, ``open`` or ``xdg-open``."""
    environ = dict(os.environ) if environ is None else environ
    browser = environ.get("BROWSER", "").strip()
    if browser:
        # $BROWSER may list several, separated by ':' (the first is used).
        return shlex.split(browser.split(":")[0])
    return ["open"] if (platform or sys.platform) == "darwin" else ["xdg-open"]


async def open_with_handler(target: str) -> None:
    """Start the handler on a path or URL (never through a shell)."""
    command = handler_command()
    if not command:
        raise HandlerError("no program to open it with (set $BROWSER)")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            target,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        raise HandlerError(f"could not start {command[0]}: {error.strerror or error}") from None
    waiting = asyncio.get_running_loop().create_task(process.wait())
    _running.add(waiting)
    waiting.add_done_callback(_running.discard)
