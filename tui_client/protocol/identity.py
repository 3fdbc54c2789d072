"""The identity service API (v2) and the client-server 3PID endpoints that use it (pure).

An identity server maps third-party identifiers (an email address, a phone number) to
Matrix user IDs. Its v2 API wants a token of its own, got by handing it an OpenID
token from the homeserver (``/account/register``); the user accepts its terms
(``/terms``) before it answers lookups; lookups send hashes of the addresses
(``/hash_details`` gives the pepper and algorithms, ``/lookup`` takes the hashes),
never the addresses themselves when the server offers ``sha256``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from .requests import CLIENT_V3, Request

__all__ = [
    "IS_V2",
    "Policy",
    "accept_terms",
    "account_3pids",
    "bind_3pid",
    "hash_address",
    "hash_details",
    "id_server_name",
    "identity_server_from_well_known",
    "invite_3pid",
    "is_email",
    "lookup",
    "normalise_address",
    "openid_token",
    "parse_lookup",
    "parse_terms",
    "register",
    "request_email_token",
    "terms",
    "unbind_3pid",
]

IS_V2 = "/_matrix/identity/v2"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_email(text: str) -> bool:
    """Whether ``text`` reads as an email address (not a Matrix ID: those start with ``@``)."""
    return not text.startswith("@") and bool(_EMAIL.match(text.strip()))


def normalise_address(medium: str, address: str) -> str:
    """The form identity servers hash and store: emails lower-cased, trimmed."""
    address = address.strip()
    return address.lower() if medium == "email" else address.lstrip("+")


def hash_address(address: str, medium: str, pepper: str) -> str:
    """``sha256`` lookup hash: unpadded URL-safe base64 of ``"<address> <medium> <pepper>"``."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def id_server_name(base_url: str) -> str:
    """The ``id_server`` the homeserver is given: the base URL's host and port, no scheme."""
    parts = urlsplit(base_url)
    return parts.netloc or base_url


def identity_server_from_well_known(data: object) -> str | None:
    """``m.identity_server.base_url`` from a ``.well-known/matrix/client`` answer."""
    if not isinstance(data, dict):
        return None
    entry = data.get("m.identity_server")
    url = entry.get("base_url") if isinstance(entry, dict) else None
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return url.rstrip("/")
    return None


@dataclass(frozen=True, slots=True)
class Policy:
    """One document of an identity server's terms, in one language."""

    name: str
    version: str
    title: str
    url: str


def parse_terms(data: object, language: str = "en") -> list[Policy]:
    """The policies of a ``GET /terms`` answer, each in ``language`` or its first language."""
    policies = data.get("policies") if isinstance(data, dict) else None
    if not isinstance(policies, dict):
        return []
    out: list[Policy] = []
    for name, doc in policies.items():
        if not isinstance(doc, dict):
            continue
        version = doc.get("version")
        langs = {k: v for k, v in doc.items() if k != "version" and isinstance(v, dict)}
        chosen = langs.get(language) or next(iter(langs.values()), None)
        if chosen is None or not isinstance(chosen.get("url"), str):
            continue
        title = chosen.get("name")
        out.append(Policy(str(name), str(version or ""), str(title or name), chosen["url"]))
    return out


def parse_lookup(data: object, wanted: Mapping[str, str]) -> dict[str, str]:
    """``{address: user_id}`` from a ``/lookup`` answer; ``wanted`` maps each sent hash
    (or plain ``"address medium"``) back to its address."""
    mappings = data.get("mappings") if isinstance(data, dict) else None
    if not isinstance(mappings, dict):
        return {}
    return {
        wanted[key]: value
        for key, value in mappings.items()
        if key in wanted and isinstance(value, str) and value.startswith("@")
    }


# -- requests to the identity server -----------------------------------------------------


def terms() -> Request:
    return Request("GET", f"{IS_V2}/terms", authenticated=False)


def accept_terms(urls: Iterable[str]) -> Request:
    return Request("POST", f"{IS_V2}/terms", body={"user_accepts": list(urls)})


def register(openid: Mapping[str, Any]) -> Request:
    """``POST /account/register`` with the homeserver's OpenID token: the identity token."""
    return Request("POST", f"{IS_V2}/account/register", body=dict(openid), authenticated=False)


def hash_details() -> Request:
    return Request("GET", f"{IS_V2}/hash_details")


def lookup(addresses: Iterable[str], algorithm: str, pepper: str) -> Request:
    return Request(
        "POST",
        f"{IS_V2}/lookup",
        body={"addresses": list(addresses), "algorithm": algorithm, "pepper": pepper},
    )


def request_email_token(email: str, client_secret: str, send_attempt: int = 1) -> Request:
    """``POST /validate/email/requestToken``: the server mails a link to confirm ``email``."""
    return Request(
        "POST",
        f"{IS_V2}/validate/email/requestToken",
        body={"client_secret": client_secret, "email": email, "send_attempt": send_attempt},
    )


# -- requests to the homeserver ----------------------------------------------------------


def openid_token(user_id: str) -> Request:
    return Request(
        "POST", f"{CLIENT_V3}/user/{quote(user_id, safe='')}/openid/request_token", body={}
    )


def invite_3pid(
    room_id: str, id_server: str, id_access_token: str, medium: str, address: str
) -> Request:
    """``POST /rooms/{roomId}/invite`` by third-party ID: the homeserver asks the identity
    server, which mails the invitation; the room gets ``m.room.third_party_invite``."""
    return Request(
        "POST",
        f"{CLIENT_V3}/rooms/{quote(room_id, safe='')}/invite",
        body={
            "id_server": id_server,
            "id_access_token": id_access_token,
            "medium": medium,
            "address": address,
        },
    )


def bind_3pid(client_secret: str, sid: str, id_server: str, id_access_token: str) -> Request:
    return Request(
        "POST",
        f"{CLIENT_V3}/account/3pid/bind",
        body={
            "client_secret": client_secret,
            "sid": sid,
            "id_server": id_server,
            "id_access_token": id_access_token,
        },
    )


def unbind_3pid(medium: str, address: str, id_server: str) -> Request:
    return Request(
        "POST",
        f"{CLIENT_V3}/account/3pid/unbind",
        body={"medium": medium, "address": address, "id_server": id_server},
    )


def account_3pids() -> Request:
    return Request("GET", f"{CLIENT_V3}/account/3pid")
