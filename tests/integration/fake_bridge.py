"""A small application service that plays a bridged IRC-like network, ``fakeirc``.

It listens on loopback (a thread with a standard-library HTTP server), writes a real
registration file for Synapse (``app_service_config_files``) and, once the homeserver
runs, seeds it the way a bridge does: rooms created by its bot with ``m.bridge`` and
``uk.half-shot.bridge`` state, published to the directory under its network
(``PUT /directory/list/appservice/{networkId}/{roomId}``), a puppeted user registered
through the appservice (``m.login.application_service``) talking in them.

Synapse calls it for the third-party protocol, location and user queries, for its
namespaces (``/users``, ``/rooms``) and with transactions, all answered here.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

from tui_client.devtools.synapse import SynapseServer

PROTOCOL = "fakeirc"
NETWORK = "fakenet"
NETWORK_DESC = "Fake Network"
BOT_LOCALPART = "fakeirc_bot"
PUPPET_NICK = "alice"


def _bridge_content(bot: str, channel: str) -> dict[str, Any]:
    return {
        "bridgebot": bot,
        "protocol": {"id": PROTOCOL, "displayname": PROTOCOL},
        "network": {"id": NETWORK, "displayname": NETWORK_DESC},
        "channel": {
            "id": channel,
            "displayname": channel,
            "external_url": f"https://irc.example/{channel[1:]}",
        },
    }


@dataclass
class BridgedRoom:
    channel: str
    room_id: str
    alias: str


@dataclass
class FakeBridge:
    """The application service; :meth:`start` before Synapse, :meth:`seed` after."""

    base_dir: Path
    server_name: str = "localhost"
    as_token: str = field(default_factory=lambda: secrets.token_hex(16))
    hs_token: str = field(default_factory=lambda: secrets.token_hex(16))
    rooms: dict[str, BridgedRoom] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def bot(self) -> str:
        return f"@{BOT_LOCALPART}:{self.server_name}"

    @property
    def puppet(self) -> str:
        return f"@{PROTOCOL}_{PUPPET_NICK}:{self.server_name}"

    @property
    def instance_id(self) -> str:
        """What Synapse calls our network (``{appservice id}|{network id}``)."""
        return f"{PROTOCOL}|{NETWORK}"

    def alias_for(self, channel: str) -> str:
        return f"#{PROTOCOL}_{NETWORK}_{channel.lstrip('#')}:{self.server_name}"

    # -- the HTTP side ------------------------------------------------------------

    def start(self) -> Path:
        """Listen on loopback; write and return the registration file."""
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {bridge.hs_token}":
                    self._answer(403, {"errcode": "M_FORBIDDEN"})
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "access_token"}
                bridge.queries.append(parts.path)
                status, body = bridge.answer_get(unquote(parts.path), query)
                self._answer(status, body)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self._answer(200, {})  # transactions: the fake bridge ignores events

            do_POST = do_PUT

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        port = self._httpd.server_address[1]
        registration = {
            "id": PROTOCOL,
            "url": f"http://127.0.0.1:{port}",
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": BOT_LOCALPART,
            "rate_limited": False,
            "protocols": [PROTOCOL],
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@{PROTOCOL}_.*"}],
                "aliases": [{"exclusive": True, "regex": f"#{PROTOCOL}_.*"}],
                "rooms": [],
            },
        }
        self.base_dir.mkdir(parents=True, exist_ok=True)
        path = self.base_dir / "fakeirc-registration.yaml"
        path.write_text(json.dumps(registration, indent=2), encoding="utf-8")  # JSON is YAML
        return path

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def answer_get(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        prefix = "/_matrix/app/v1"
        if path == f"{prefix}/thirdparty/protocol/{PROTOCOL}":
            return 200, {
                "user_fields": ["network", "nickname"],
                "location_fields": ["network", "channel"],
                "icon": "mxc://example.org/fakeirc",
                "field_types": {
                    "network": {"regexp": "[a-z]+", "placeholder": "fakenet"},
                    "channel": {"regexp": "#[^\\s]+", "placeholder": "#channel"},
                    "nickname": {"regexp": "\\S+", "placeholder": "nick"},
                },
                "instances": [
                    {
                        "network_id": NETWORK,
                        "desc": NETWORK_DESC,
                        "icon": "mxc://example.org/fakenet",
                        "fields": {"network": NETWORK},
                    }
                ],
            }
        if path == f"{prefix}/thirdparty/location/{PROTOCOL}":
            channel = query.get("channel", "")
            room = self.rooms.get(channel)
            if query.get("network") != NETWORK or room is None:
                return 200, []
            return 200, [
                {
                    "alias": room.alias,
                    "protocol": PROTOCOL,
                    "fields": {"network": NETWORK, "channel": channel},
                }
            ]
        if path == f"{prefix}/thirdparty/user/{PROTOCOL}":
            nick = query.get("nickname", "")
            if query.get("network") != NETWORK or not nick.isalnum():
                return 200, []
            user = f"@{PROTOCOL}_{nick.lower()}:{self.server_name}"
            return 200, [
                {
                    "userid": user,
                    "protocol": PROTOCOL,
                    "fields": {"network": NETWORK, "nickname": nick},
                }
            ]
        if path.startswith(f"{prefix}/users/"):
            return 404, {"errcode": "M_NOT_FOUND"}  # no user created on demand
        if path.startswith(f"{prefix}/rooms/"):
            return 404, {"errcode": "M_NOT_FOUND"}  # no room created on demand
        return 404, {"errcode": "M_UNRECOGNIZED"}

    # -- the homeserver side --------------------------------------------------------

    def _as(
        self,
        synapse: SynapseServer,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        user: str | None = None,
    ) -> dict[str, Any]:
        if user is not None:
            path += ("&" if "?" in path else "?") + "user_id=" + quote(user, safe="")
        status, answer = synapse.request_json(method, path, body, self.as_token)
        assert status == 200, (method, path, status, answer)
        return answer

    def seed(self, synapse: SynapseServer, channels: tuple[str, ...], message: str) -> None:
        """Create the bridged rooms, publish them under the network, and let the puppet talk."""
        self._as(
            synapse,
            "POST",
            "/_matrix/client/v3/register",
            {"type": "m.login.application_service", "username": f"{PROTOCOL}_{PUPPET_NICK}"},
        )
        for channel in channels:
            content = _bridge_content(self.bot, channel)
            state_key = f"{PROTOCOL}/{NETWORK}/{channel}"
            answer = self._as(
                synapse,
                "POST",
                "/_matrix/client/v3/createRoom",
                {
                    "preset": "public_chat",
                    "name": f"{channel} on {NETWORK_DESC}",
                    "topic": f"Bridged from {channel}",
                    "room_alias_name": self.alias_for(channel)[1:].split(":", 1)[0],
                    "initial_state": [
                        {"type": "m.bridge", "state_key": state_key, "content": content},
                        {"type": "uk.half-shot.bridge", "state_key": state_key, "content": content},
                    ],
                },
            )
            room_id = str(answer["room_id"])
            self.rooms[channel] = BridgedRoom(channel, room_id, self.alias_for(channel))
            self._as(
                synapse,
                "PUT",
                f"/_matrix/client/v3/directory/list/appservice/{NETWORK}/{quote(room_id, safe='')}",
                {"visibility": "public"},
            )
            room = quote(room_id, safe="")
            self._as(synapse, "POST", f"/_matrix/client/v3/join/{room}", {}, user=self.puppet)
            self._as(
                synapse,
                "PUT",
                f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{secrets.token_hex(6)}",
                {"msgtype": "m.text", "body": message},
                user=self.puppet,
            )


CHANNELS = ("#chan", "#other")
PUPPET_SAYS = "hello from fakenet"


@dataclass
class BridgedWorld:
    synapse: SynapseServer
    bridge: FakeBridge


@pytest.fixture(scope="module")
def bridged_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgedWorld]:
    """A Synapse of its own with the fake bridge registered (the session server has none)."""
    base = tmp_path_factory.mktemp("bridged")
    bridge = FakeBridge(base / "bridge")
    registration = bridge.start()
    synapse = SynapseServer(base / "synapse", app_service_config_files=[registration])
    synapse.start()
    try:
        bridge.seed(synapse, CHANNELS, PUPPET_SAYS)
        yield BridgedWorld(synapse, bridge)
    finally:
        synapse.stop()
        bridge.stop()
