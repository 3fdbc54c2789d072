"""What a process's open file descriptors are, by kind (Linux ``/proc``).

``fd_kinds()`` reads ``/proc/<pid>/fd`` and names each descriptor: a TCP connection by
the peer's port (``tcp:synapse`` when the port is one of ``ports``), a Unix socket, a
pipe, an eventfd or epoll, an SQLite file (the database, its ``-wal``/``-shm``/
``-journal``), a temporary file, a device, any other file. The soak samples it so that a
leak is attributed at once ("``tcp:synapse`` +40 an hour") instead of as a bare count.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping

_SOCKET = re.compile(r"socket:\[(\d+)\]")
_ANON = re.compile(r"anon_inode:\[?([^\]]+)\]?")
_SQLITE = re.compile(r"\.(sqlite\d*|db)(-wal|-shm|-journal)?$")


def _tcp_sockets() -> dict[str, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state) for every TCP socket in this netns."""
    sockets: dict[str, tuple[int, int, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines, None)
                for line in lines:
                    cols = line.split()
                    if len(cols) < 10:
                        continue
                    local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                    sockets[inode] = (
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                        state,
                    )
        except OSError:
            continue
    return sockets


def _unix_sockets() -> set[str]:
    try:
        with open("/proc/net/unix") as lines:
            next(lines, None)
            return {cols[6] for line in lines if len(cols := line.split()) >= 7}
    except OSError:
        return set()


def classify(
    target: str,
    tcp: Mapping[str, tuple[int, int, str]],
    unix: set[str],
    ports: Mapping[int, str],
) -> str:
    """The kind of one descriptor whose ``readlink`` is ``target``."""
    if match := _SOCKET.fullmatch(target):
        inode = match.group(1)
        if inode in tcp:
            local, remote, state = tcp[inode]
            if state == "0A":  # LISTEN
                return f"tcp:listen:{ports.get(local, 'other')}"
            name = ports.get(remote) or ports.get(local) or "other"
            return f"tcp:{name}"
        return "unix" if inode in unix else "socket"
    if target.startswith("pipe:"):
        return "pipe"
    if match := _ANON.fullmatch(target):
        return match.group(1)  # eventfd, eventpoll, inotify, timerfd...
    if _SQLITE.search(target):
        return "sqlite"
    if target.startswith("/dev/"):
        return "dev"
    if target.endswith(" (deleted)"):
        return "deleted file"
    if os.path.basename(target).startswith("tmp"):
        return "temp file"
    return "file"


def fd_kinds(pid: int | str = "self", ports: Mapping[int, str] | None = None) -> dict[str, int]:
    """Open descriptors of ``pid`` counted by kind (see ``classify``)."""
    folder = f"/proc/{pid}/fd"
    targets = []
    for name in os.listdir(folder):
        try:
            targets.append(os.readlink(f"{folder}/{name}"))
        except OSError:
            continue  # closed between listdir and readlink (the listdir's own fd, too)
    tcp = _tcp_sockets()
    unix = _unix_sockets()
    return dict(Counter(classify(t, tcp, unix, ports or {}) for t in targets))
