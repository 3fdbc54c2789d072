"""Uploads in progress above the composer (a bar with speed; F8 cancels), and the test
for a pasted line that names a file to upload."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ...engine.updates import UploadProgress
from ...engine.uploads import size_text
from ...protocol.sanitize import clean_line

__all__ = ["UploadBar", "pasted_file"]

BAR_WIDTH = 12


def pasted_file(text: str) -> Path | None:
    """The file a pasted text names: one line that is an existing absolute path, or a
    ``file://`` URI of one (what file managers put on the clipboard); else ``None``."""
    line = text.strip()
    if not line or "\n" in line or len(line) > 4096:
        return None
    if line.startswith("file://"):
        parts = urlsplit(line)
        if parts.netloc not in ("", "localhost"):
            return None
        line = unquote(parts.path)
    elif len(line) >= 2 and line[0] == line[-1] and line[0] in "'\"":
        line = line[1:-1]  # a quoted path, as shells and file managers paste them
    if not line.startswith("/"):
        return None
    path = Path(line)
    try:
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


class UploadBar(Widget):
    """One line per upload under way: name, bar, percentage, speed; hidden when idle."""

    DEFAULT_CSS = """
    UploadBar {
        height: auto;
        max-height: 4;
        display: none;
        color: $foreground;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._uploads: dict[str, UploadProgress] = {}

    @property
    def uploads(self) -> list[UploadProgress]:
        """The uploads shown, oldest first."""
        return list(self._uploads.values())

    def latest(self) -> UploadProgress | None:
        """The upload F8 cancels: the newest one under way."""
        return next(reversed(self._uploads.values()), None)

    def show(self, progress: UploadProgress) -> None:
        """Take an engine update: draw it, or drop a finished upload."""
        if progress.finished:
            self._uploads.pop(progress.upload_id, None)
        else:
            self._uploads[progress.upload_id] = progress
        self.display = bool(self._uploads)
        self.refresh(layout=True)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, progress in enumerate(self._uploads.values()):
            if n:
                text.append("\n")
            text.append_text(_line(progress))
        return text


def _line(progress: UploadProgress) -> Text:
    name = clean_line(progress.name, 40)
    line = Text()
    if progress.state == "waiting":
        line.append(f"Waiting to send {name}: ", style=Style(color="#e5c07b"))
        line.append(clean_line(progress.error or "", 80))
        line.append("  F8 cancel", style=Style(dim=True))
        return line
    verb = {"preparing": "Preparing", "sending": "Sending"}.get(progress.state, "Uploading")
    fraction = progress.sent / progress.total if progress.total else 1.0
    filled = round(fraction * BAR_WIDTH)
    line.append(f"{verb} {name} ")
    line.append("█" * filled, style=Style(color="#61afef"))
    line.append("░" * (BAR_WIDTH - filled), style=Style(dim=True))
    line.append(
        f" {fraction * 100:3.0f}%  {size_text(progress.sent)} of {size_text(progress.total)}"
    )
    if progress.state == "uploading" and progress.bytes_per_second > 0:
        line.append(f"  {size_text(progress.bytes_per_second)}/s")
    line.append("  F8 cancel", style=Style(dim=True))
    return line
