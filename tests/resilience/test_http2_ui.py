"""Over HTTP/2 the status line says what it says over HTTP/1.1: a connection reset (every
stream of the one connection lost at once) shows "retrying", and the client reconnects by
itself. (The engine side, both protocols: tests/resilience/test_http2.py.)"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import pytest

from tui_client.devtools.fault_proxy import FaultProxy
from tui_client.ui.app import TuiClientApp

from ..ui.synapse_login import until
from .conftest import TlsWorld
from .support import reset_next_sync, saved_login, status_line
from .tls_support import server_context


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
async def test_a_reset_over_http2_says_retrying_in_the_status_line(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    armed = threading.Event()
    user = tls_world.synapse.register_user(f"h2status{size[0]}", "pw")
    cert = server_context(tls_world.ca.leaf(f"h2-status-{size[0]}"))
    endpoint = FaultProxy(
        tls_world.synapse.base_url, reset_next_sync(armed), ssl_context=cert, http2=True
    ).start()
    try:
        await saved_login(user.user_id, "pw", tmp_path, f"https://localhost:{endpoint.port}")
        app = TuiClientApp(base_dir=tmp_path)
        async with app.run_test(size=size) as pilot:
            last_line = partial(status_line, app)
            await until(
                pilot, lambda: "connected" in last_line(), "connected", on_timeout=last_line
            )
            armed.set()
            await until(
                pilot,
                lambda: "retrying" in last_line(),
                "the status line to say retrying",
                timeout=30,
                on_timeout=last_line,
            )
            await until(
                pilot,
                lambda: "connected" in last_line() and "retrying" not in last_line(),
                "connected again",
                timeout=60,
                on_timeout=last_line,
            )
    finally:
        endpoint.stop()
    reset = [e for e in endpoint.history() if e.faults]
    assert [(e.protocol, e.faults) for e in reset] == [("h2", ["request:reset"])]
    assert {e.protocol for e in endpoint.history()} == {"h2"}
