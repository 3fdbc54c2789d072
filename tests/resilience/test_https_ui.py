"""Bad certificates as the user meets them: on the login screen (expired, for another host
name, from an unknown authority) and in the status line when the server's certificate
goes bad while the client runs, and back to connected once it is fixed. Real TLS
endpoints in front of Synapse (tests/resilience/conftest.py), driven with Pilot.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tui_client.devtools.fault_proxy import FaultProxy
from tui_client.ui.app import TuiClientApp

from ..ui.synapse_login import until
from ..ui.test_login_errors import assert_failed_login, attempt, screen_text
from .conftest import TlsWorld, fresh_trust_store
from .support import saved_login, status_line
from .tls_support import server_context

CASES = {
    "expired": ({"expired": True}, "has expired", "renew"),
    "wrong-host": (
        {"hosts": ("matrix.example.org",)},
        "another host name",
        "check the homeserver url",
    ),
    "self-signed": ({"self_signed": True}, "self-signed", "ssl_cert_file"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_certificate_is_explained_on_the_login_screen(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path, case: str
) -> None:
    leaf, phrase, advice = CASES[case]
    user = tls_world.synapse.register_user(f"login-{case}", "pw")
    with tls_world.endpoint(case, **leaf) as endpoint:
        url = f"https://localhost:{endpoint.port}"
        app = TuiClientApp(base_dir=tmp_path, start_sync=False)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await attempt(pilot, user.user_id, "pw", url)
            text = assert_failed_login(
                pilot,
                screen,
                user_id=user.user_id,
                homeserver=url,
                phrase="not trusted",
                focus="homeserver",
            )
            assert phrase in text.lower() or phrase in text, text
            assert advice in text.lower(), text
            # What the terminal shows, not only the widget: the advice is on screen.
            shown = " ".join(screen_text(app).split())
            assert " ".join(advice.split()[:2]) in shown.lower(), screen_text(app)


async def test_unknown_authority_is_explained_on_the_login_screen(
    tls_world: TlsWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fresh_trust_store(monkeypatch)
    app = TuiClientApp(base_dir=tmp_path, start_sync=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attempt(pilot, "@alice:localhost", "pw", tls_world.url)
        text = assert_failed_login(
            pilot,
            screen,
            user_id="@alice:localhost",
            homeserver=tls_world.url,
            phrase="not trusted",
            focus="homeserver",
        )
        assert "SSL_CERT_FILE" in text and "trust store" in text, text


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
async def test_certificate_gone_bad_is_said_in_the_status_line(
    tls_world: TlsWorld, trust_ca: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    user = tls_world.synapse.register_user(f"status{size[0]}", "pw")
    good = server_context(tls_world.ca.leaf("status-good"))
    endpoint = FaultProxy(tls_world.synapse.base_url, ssl_context=good).start()
    port = endpoint.port
    url = f"https://localhost:{port}"
    await saved_login(user.user_id, "pw", tmp_path, url)
    app = TuiClientApp(base_dir=tmp_path)
    try:
        async with app.run_test(size=size) as pilot:
            last_line = partial(status_line, app)
            await until(
                pilot, lambda: "connected" in last_line(), "connected", on_timeout=last_line
            )
            # The server's certificate expires (the endpoint restarts with it, same port).
            endpoint.stop()
            expired = server_context(tls_world.ca.leaf("status-expired", expired=True))
            endpoint = FaultProxy(
                tls_world.synapse.base_url, ssl_context=expired, port=port
            ).start()
            await until(
                pilot,
                lambda: "certificate" in last_line() and "expired" in last_line(),
                "the status line to say the certificate expired",
                timeout=60,
                on_timeout=last_line,
            )
            assert "retrying" in last_line()
            # Renewed: the client carries on by itself (or at once when asked to retry).
            endpoint.stop()
            endpoint = FaultProxy(tls_world.synapse.base_url, ssl_context=good, port=port).start()
            assert app.client is not None and app.client.sync_loop is not None
            app.client.sync_loop.retry_now()
            await until(
                pilot,
                lambda: "connected" in last_line() and "expired" not in last_line(),
                "connected again",
                timeout=60,
                on_timeout=last_line,
            )
    finally:
        endpoint.stop()
