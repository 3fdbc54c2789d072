"""Child processes that end with the process that started them, even when it is killed.

The demo runs Synapse and the bot in sessions of their own (a Ctrl-C meant for the UI
must not reach them) and stops them itself. If the launcher dies without its clean-up
(SIGKILL, a crash of the interpreter), Linux can still end them: ``prctl(PR_SET_PDEATHSIG)``
asks the kernel to send a signal to a process when the thread that forked it exits. It
survives ``exec``, so it is set between fork and exec (``preexec_fn``).

Standard library only, like :mod:`.synapse`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent dies; ``None`` off Linux.

    Also ``None`` off the main thread: the signal is sent when the *thread* that forked
    the child ends, and a worker thread ends long before the process. The function only
    makes a system call: the C function is looked up here, before the fork.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        # The parent may have died between the fork and the prctl: then nobody will
        # signal us, so end now.
        if os.getppid() != parent:
            os._exit(1)

    return preexec
