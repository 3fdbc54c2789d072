"""155 public rooms in the session Synapse's directory, seeded in the background.

Creating a room costs Synapse about 0.15 s of CPU, so the rooms are created once per
session, in parallel, in a background thread that starts as soon as the session
does (when a directory test is selected), while other tests mostly wait on timers
and long polls. Every room's name, topic and alias carry a per-session token, so a
search for it finds exactly these rooms whatever else the shared server holds.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tui_client.devtools.synapse import RegisteredUser, SynapseServer

DIRECTORY_SIZE = 155
DIRECTORY_TESTS_MODULE = "integration/test_directory.py"


@dataclass
class DirectoryWorld:
    """The seeded rooms: ``names[n]`` is ``"Dirtest <token> NNN"``, ``aliases[n]`` its alias."""

    owner: RegisteredUser
    token: str
    names: list[str]
    aliases: list[str]
    room_ids: dict[str, str] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _error: BaseException | None = field(default=None, repr=False)

    def start(self, synapse: SynapseServer) -> None:
        def seed() -> None:
            try:
                asyncio.run(self._seed(synapse))
            except BaseException as error:
                self._error = error

        self._thread = threading.Thread(target=seed, name="seed-directory", daemon=True)
        self._thread.start()

    async def _seed(self, synapse: SynapseServer, concurrency: int = 8) -> None:
        headers = {"Authorization": f"Bearer {self.owner.access_token}"}
        async with httpx.AsyncClient(
            base_url=synapse.base_url,
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency),
            timeout=120,
            trust_env=False,
        ) as http:
            gate = asyncio.Semaphore(concurrency)

            async def create(n: int) -> None:
                body = {
                    "preset": "public_chat",
                    "visibility": "public",
                    "name": self.names[n],
                    "topic": f"Room number {n} of the {self.token} directory test",
                    "room_alias_name": self.aliases[n][1:].split(":", 1)[0],
                }
                async with gate:
                    response = await http.post("/_matrix/client/v3/createRoom", json=body)
                assert response.status_code == 200, response.text
                self.room_ids[self.names[n]] = response.json()["room_id"]

            await asyncio.gather(*(create(n) for n in range(DIRECTORY_SIZE)))
            # Synapse lists a room once its room statistics caught up: wait for all.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if await self._listed(http) >= DIRECTORY_SIZE:
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("the seeded rooms never all appeared in the directory")

    async def _listed(self, http: httpx.AsyncClient) -> int:
        # Synapse answers at most 100 rooms a page.
        count, since = 0, None
        while True:
            body: dict[str, object] = {"limit": 100, "filter": {"generic_search_term": self.token}}
            if since:
                body["since"] = since
            page = (await http.post("/_matrix/client/v3/publicRooms", json=body)).json()
            count += len(page.get("chunk", []))
            since = page.get("next_batch")
            if not since:
                return count

    def wait(self, timeout: float = 300) -> None:
        """Block until every room is created and listed (re-raises a seeding failure)."""
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "seeding the directory did not finish"
        if self._error is not None:
            raise self._error


@pytest.fixture(scope="session")
def directory_world(synapse: SynapseServer) -> Iterator[DirectoryWorld]:
    """The seeded directory (being seeded until :meth:`DirectoryWorld.wait` returns)."""
    token = f"dt{secrets.token_hex(3)}"
    owner = synapse.register_user(
        f"curator-{token}", f"password-curator-{token}", displayname="Curator"
    )
    world = DirectoryWorld(
        owner,
        token,
        [f"Dirtest {token} {n:03d}" for n in range(DIRECTORY_SIZE)],
        [f"#{token}-{n:03d}:{synapse.server_name}" for n in range(DIRECTORY_SIZE)],
    )
    world.start(synapse)
    yield world
    if world._thread is not None:
        world._thread.join(120)


@pytest.fixture(scope="session", autouse=True)
def _seed_directory_early(request: pytest.FixtureRequest) -> None:
    if any(DIRECTORY_TESTS_MODULE in item.nodeid for item in request.session.items):
        request.getfixturevalue("directory_world")
