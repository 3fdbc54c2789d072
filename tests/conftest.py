"""Shared fixtures: an isolated data dir and keyring, and a real Synapse homeserver.

``synapse`` starts one homeserver for the whole session, lazily: only sessions
that run a test requesting it (directly or through ``make_user``) pay the ~3 s
start. Such tests are also marked ``synapse`` automatically, so
``pytest -m "not synapse"`` runs everything else. If Synapse cannot start, the
fixture raises and the tests error loudly; nothing is skipped.
"""

from __future__ import annotations

import gc
import itertools
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui_client.devtools.oauth_server import AuthServer
from tui_client.devtools.synapse import RegisteredUser, SynapseServer
from tui_client.engine import gc_policy

# The directory tests' 155 public rooms are seeded from the start of the session, in
# the background, while the tests before them run (see tests/integration/directory_world.py).
from .integration.directory_world import _seed_directory_early, directory_world
from .support import crash_log
from .support.synapse import own_synapse
from .support.users import MakeUser

__all__ = ["_seed_directory_early", "directory_world"]


_user_counter = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test away from the developer's real data dir and keyring."""
    data_dir = tmp_path_factory.mktemp("tui-client-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUI_CLIENT_DATA_DIR", str(data_dir))
        mp.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
        # The compiled dataclass methods a started client keeps (engine/method_cache.py).
        mp.setenv("TUI_CLIENT_CODE_CACHE", str(data_dir / "dataclass-methods.bin"))
        # And the parsed stylesheet rules (ui/css_cache.py).
        mp.setenv("TUI_CLIENT_CSS_CACHE", str(data_dir / "css-rules.bin"))
        yield data_dir


@pytest.fixture(autouse=True)
def _leftovers_collected_at_teardown() -> Iterator[None]:
    """An app's test leaves its client, database threads, tasks and connections in cycles,
    and the app's collector policy (engine/gc_policy.py) freezes what is alive and holds
    full collections back: left alone, that garbage is collected at some random moment of
    a LATER test, in whatever thread allocates then, its coroutines' ``finally`` blocks and
    connections' closes running among that test's work (a test whose sync never paused was
    seen; finalization in a foreign thread is how native code gets torn down under its
    user). So after a test that froze anything, the policy is undone and the garbage
    collected here, in the main thread, between tests."""
    yield
    if gc.get_threshold()[2] == gc_policy.HELD_GEN2_THRESHOLD or gc.get_freeze_count():
        gc_policy.reset()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One real Synapse (generous rate limits) shared by the whole session."""
    yield from own_synapse(tmp_path_factory, "synapse")


@pytest.fixture
def make_user(synapse: SynapseServer) -> MakeUser:
    """A factory registering fresh users on the session server.

    ``make_user(prefix="user", displayname=None)`` returns a
    :class:`RegisteredUser` with a unique lowercase localpart
    (prefix + counter + random suffix) and password ``"password-" + localpart``.
    """

    def _make_user(prefix: str = "user", displayname: str | None = None) -> RegisteredUser:
        localpart = f"{prefix}{next(_user_counter)}-{secrets.token_hex(3)}".lower()
        return synapse.register_user(localpart, f"password-{localpart}", displayname=displayname)

    return _make_user


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the ``synapse`` fixture (even indirectly) as ``synapse``."""
    for item in items:
        if {"synapse", "oauth_homeserver"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.synapse)


@pytest.fixture(scope="session")
def oauth_homeserver(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SynapseServer, AuthServer]]:
    """A second real Synapse that delegates authentication to our test authorization
    server (tui_client/devtools/oauth_server.py), as a homeserver behind the Matrix
    Authentication Service does: no password login, OAuth 2.0 only."""
    auth = AuthServer().start()
    server = SynapseServer(
        tmp_path_factory.mktemp("synapse-oauth"), extra_config=auth.synapse_config()
    )
    server.start()
    auth.homeserver = server.base_url
    try:
        yield server, auth
    finally:
        server.stop()
        auth.stop()


# With TUI_CLIENT_CRASH_DIR set (make test), the running test's id and a crash's stacks
# are kept in that folder (tests/support/crash_log.py).
_crash_log: list[crash_log.CrashLog] = []


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """After pytest's own faulthandler plugin, so the dump goes to our file."""
    log = crash_log.from_environment()
    if log is not None:
        _crash_log.append(log)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    while _crash_log:
        _crash_log.pop().close()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    for log in _crash_log:
        log.entering(nodeid, "running")


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    for log in _crash_log:
        log.entering(nodeid, "finished; the next test had not started")
