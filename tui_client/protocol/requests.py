"""Request builders for the Client-Server API.

Each builder returns a :class:`Request` (method, path, query, body) and does no I/O;
``net`` runs them. Path parameters are percent-encoded here, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["Request"]

CLIENT_V3 = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"


@dataclass(frozen=True, slots=True)
class Request:
    """A Client-Server API call, ready for the transport.

    ``timeout`` is how long the server may legitimately take to answer (a long-poll
    ``/sync``), which the transport adds to its own read timeout.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    authenticated: bool = True
    timeout: float = 0.0
    #: Raw bytes to send instead of a JSON ``body`` (an upload), with their media type.
    content: bytes | None = None
    content_type: str = "application/octet-stream"
    #: Whether sending it twice does no more than once (``None``: by the method: GET, PUT
    #: and DELETE are, a POST is not unless marked). The transport may repeat such a request
    #: whose answer a closing connection lost (an HTTP/2 GOAWAY).
    idempotent: bool | None = None

    @property
    def repeatable(self) -> bool:
        """Whether it may be sent again when its answer was lost (see ``idempotent``)."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")


def _seg(value: str) -> str:
    return quote(value, safe="")


def _query(**params: object) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            items.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            items.extend((key, str(v)) for v in value)
        else:
            items.append((key, str(value)))
    return tuple(items)


def versions() -> Request:
    """``GET /_matrix/client/versions``: also how we check a URL is a homeserver."""
    return Request("GET", "/_matrix/client/versions", authenticated=False)


def well_known() -> Request:
    """``GET /.well-known/matrix/client`` on the server name's host."""
    return Request("GET", "/.well-known/matrix/client", authenticated=False)


def login_password(
    user_id: str,
    password: str,
    *,
    device_id: str | None = None,
    device_name: str | None = None,
) -> Request:
    """``POST /login`` with ``m.login.password`` and a user identifier."""
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if device_id:
        body["device_id"] = device_id
    if device_name:
        body["initial_device_display_name"] = device_name
    return Request("POST", f"{CLIENT_V3}/login", body=body, authenticated=False)


def logout() -> Request:
    """``POST /logout``: invalidate this access token and delete its device."""
    return Request("POST", f"{CLIENT_V3}/logout", body={})


def whoami() -> Request:
    """``GET /account/whoami``."""
    return Request("GET", f"{CLIENT_V3}/account/whoami")


def sync(
    *,
    since: str | None,
    timeout_ms: int,
    filter_json: str | None = None,
    full_state: bool = False,
    set_presence: str | None = None,
) -> Request:
    """``GET /sync`` (long-poll). ``filter_json`` is an inline filter or a filter ID."""
    return Request(
        "GET",
        f"{CLIENT_V3}/sync",
        query=_query(
            since=since,
            timeout=timeout_ms,
            filter=filter_json,
            full_state=full_state or None,
            set_presence=set_presence,
        ),
        timeout=timeout_ms / 1000.0,
    )


def sync_filter(timeline_limit: int = 50) -> str:
    """The inline filter for ``/sync``: lazy-loaded members, a bounded timeline, unread
    counts per thread (``unread_thread_notifications``)."""
    return json.dumps(
        {
            "room": {
                "state": {"lazy_load_members": True},
                "timeline": {
                    "limit": timeline_limit,
                    "lazy_load_members": True,
                    "unread_thread_notifications": True,
                },
            }
        },
        separators=(",", ":"),
    )


def messages(
    room_id: str,
    *,
    from_token: str | None,
    direction: str = "b",
    limit: int = 100,
    to_token: str | None = None,
) -> Request:
    """``GET /rooms/{roomId}/messages`` with lazy-loaded members."""
    return Request(
        "GET",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/messages",
        query=_query(
            dir=direction,
            limit=limit,
            to=to_token,
            filter=json.dumps({"lazy_load_members": True}, separators=(",", ":")),
            **{"from": from_token},
        ),
    )


def send_event(room_id: str, event_type: str, txn_id: str, content: Mapping[str, Any]) -> Request:
    """``PUT /rooms/{roomId}/send/{eventType}/{txnId}`` (idempotent by transaction ID)."""
    return Request(
        "PUT",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/send/{_seg(event_type)}/{_seg(txn_id)}",
        body=dict(content),
    )


def send_state(
    room_id: str, event_type: str, state_key: str, content: Mapping[str, Any]
) -> Request:
    """``PUT /rooms/{roomId}/state/{eventType}/{stateKey}``."""
    return Request(
        "PUT",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/state/{_seg(event_type)}/{_seg(state_key)}",
        body=dict(content),
    )


def get_state_event(room_id: str, event_type: str, state_key: str = "") -> Request:
    """``GET /rooms/{roomId}/state/{eventType}/{stateKey}``."""
    return Request(
        "GET",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/state/{_seg(event_type)}/{_seg(state_key)}",
    )


def get_event(room_id: str, event_id: str) -> Request:
    """``GET /rooms/{roomId}/event/{eventId}``."""
    return Request("GET", f"{CLIENT_V3}/rooms/{_seg(room_id)}/event/{_seg(event_id)}")


def members(
    room_id: str, *, at: str | None = None, not_membership: str | None = "leave"
) -> Request:
    """``GET /rooms/{roomId}/members``: the full member list (lazy loading omits it)."""
    return Request(
        "GET",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/members",
        query=_query(at=at, not_membership=not_membership),
    )


def redact(room_id: str, event_id: str, txn_id: str, reason: str | None = None) -> Request:
    """``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``."""
    body = {"reason": reason} if reason else {}
    return Request(
        "PUT",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/redact/{_seg(event_id)}/{_seg(txn_id)}",
        body=body,
    )


def join(room_id_or_alias: str, via: Iterable[str] = (), reason: str | None = None) -> Request:
    """``POST /join/{roomIdOrAlias}`` with ``via`` (and the older ``server_name``)."""
    servers = list(via)
    body = {"reason": reason} if reason else {}
    return Request(
        "POST",
        f"{CLIENT_V3}/join/{_seg(room_id_or_alias)}",
        query=_query(via=servers, server_name=servers),
        body=body,
    )


def leave(room_id: str, reason: str | None = None) -> Request:
    """``POST /rooms/{roomId}/leave`` (also rejects an invite)."""
    body = {"reason": reason} if reason else {}
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/leave", body=body)


def forget(room_id: str) -> Request:
    """``POST /rooms/{roomId}/forget``."""
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/forget", body={})


def invite(room_id: str, user_id: str, reason: str | None = None) -> Request:
    """``POST /rooms/{roomId}/invite``."""
    body: dict[str, Any] = {"user_id": user_id}
    if reason:
        body["reason"] = reason
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/invite", body=body)


def kick(room_id: str, user_id: str, reason: str | None = None) -> Request:
    """``POST /rooms/{roomId}/kick``."""
    body: dict[str, Any] = {"user_id": user_id}
    if reason:
        body["reason"] = reason
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/kick", body=body)


def ban(room_id: str, user_id: str, reason: str | None = None) -> Request:
    """``POST /rooms/{roomId}/ban``."""
    body: dict[str, Any] = {"user_id": user_id}
    if reason:
        body["reason"] = reason
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/ban", body=body)


def set_displayname(user_id: str, displayname: str) -> Request:
    """``PUT /profile/{userId}/displayname``."""
    return Request(
        "PUT",
        f"{CLIENT_V3}/profile/{_seg(user_id)}/displayname",
        body={"displayname": displayname},
    )


def get_profile(user_id: str) -> Request:
    """``GET /profile/{userId}``."""
    return Request("GET", f"{CLIENT_V3}/profile/{_seg(user_id)}")


def receipt(
    room_id: str, event_id: str, receipt_type: str = "m.read", thread_id: str | None = None
) -> Request:
    """``POST /rooms/{roomId}/receipt/{receiptType}/{eventId}``: unthreaded unless ``thread_id``
    (a thread root's event ID, or ``"main"`` for the main timeline)."""
    return Request(
        "POST",
        f"{CLIENT_V3}/rooms/{_seg(room_id)}/receipt/{_seg(receipt_type)}/{_seg(event_id)}",
        body={"thread_id": thread_id} if thread_id else {},
    )


def relations(
    room_id: str,
    event_id: str,
    rel_type: str | None = None,
    *,
    from_token: str | None = None,
    limit: int = 50,
    direction: str = "b",
) -> Request:
    """``GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}]``: the events that relate to
    one (``dir=b``: newest first); the answer's ``next_batch`` pages on."""
    path = f"{CLIENT_V1}/rooms/{_seg(room_id)}/relations/{_seg(event_id)}"
    if rel_type:
        path += f"/{_seg(rel_type)}"
    return Request("GET", path, query=_query(dir=direction, limit=limit, **{"from": from_token}))


def threads(
    room_id: str, *, include: str = "all", from_token: str | None = None, limit: int = 20
) -> Request:
    """``GET /v1/rooms/{roomId}/threads``: thread roots, latest activity first, each with its
    summary in ``unsigned.m.relations.m.thread``; ``include`` is ``all`` or ``participated``."""
    return Request(
        "GET",
        f"{CLIENT_V1}/rooms/{_seg(room_id)}/threads",
        query=_query(include=include, limit=limit, **{"from": from_token}),
    )


def read_markers(
    room_id: str, fully_read: str, read: str | None = None, *, read_private: str | None = None
) -> Request:
    """``POST /rooms/{roomId}/read_markers``: the fully-read marker and a read receipt
    (``m.read``, or ``m.read.private`` that only our own account sees)."""
    body = {"m.fully_read": fully_read}
    if read:
        body["m.read"] = read
    if read_private:
        body["m.read.private"] = read_private
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/read_markers", body=body)


def set_presence(user_id: str, presence: str, status_msg: str | None = None) -> Request:
    """``PUT /presence/{userId}/status``: ``online``, ``unavailable`` or ``offline``."""
    body: dict[str, Any] = {"presence": presence}
    if status_msg is not None:
        body["status_msg"] = status_msg
    return Request("PUT", f"{CLIENT_V3}/presence/{_seg(user_id)}/status", body=body)


def get_presence(user_id: str) -> Request:
    """``GET /presence/{userId}/status``: a user's presence as the server has it."""
    return Request("GET", f"{CLIENT_V3}/presence/{_seg(user_id)}/status")


def typing(room_id: str, user_id: str, typing_now: bool, timeout_ms: int = 20000) -> Request:
    """``PUT /rooms/{roomId}/typing/{userId}``."""
    body: dict[str, Any] = {"typing": typing_now}
    if typing_now:
        body["timeout"] = timeout_ms
    return Request("PUT", f"{CLIENT_V3}/rooms/{_seg(room_id)}/typing/{_seg(user_id)}", body=body)


def create_room(body: Mapping[str, Any]) -> Request:
    """``POST /createRoom`` with a body built by the caller."""
    return Request("POST", f"{CLIENT_V3}/createRoom", body=dict(body))


def resolve_alias(alias: str) -> Request:
    """``GET /directory/room/{roomAlias}``."""
    return Request("GET", f"{CLIENT_V3}/directory/room/{_seg(alias)}")


def set_account_data(user_id: str, event_type: str, content: Mapping[str, Any]) -> Request:
    """``PUT /user/{userId}/account_data/{type}``."""
    return Request(
        "PUT",
        f"{CLIENT_V3}/user/{_seg(user_id)}/account_data/{_seg(event_type)}",
        body=dict(content),
    )


def public_rooms(
    *,
    server: str | None = None,
    limit: int | None = None,
    since: str | None = None,
    search_term: str | None = None,
    room_types: Iterable[str | None] | None = None,
    include_all_networks: bool = False,
    third_party_instance_id: str | None = None,
) -> Request:
    """``POST /publicRooms``: a page of a server's published room directory.

    ``server`` asks our homeserver for another server's directory (over federation);
    ``search_term`` is the ``generic_search_term`` filter (name, topic, alias).
    """
    body: dict[str, Any] = {}
    if limit is not None:
        body["limit"] = limit
    if since:
        body["since"] = since
    search_filter: dict[str, Any] = {}
    if search_term:
        search_filter["generic_search_term"] = search_term
    if room_types is not None:
        search_filter["room_types"] = list(room_types)
    if search_filter:
        body["filter"] = search_filter
    if include_all_networks:
        body["include_all_networks"] = True
    elif third_party_instance_id:
        body["third_party_instance_id"] = third_party_instance_id
    return Request(
        "POST", f"{CLIENT_V3}/publicRooms", query=_query(server=server or None), body=body
    )


def space_hierarchy(
    room_id: str,
    *,
    from_token: str | None = None,
    limit: int | None = None,
    max_depth: int | None = None,
    suggested_only: bool = False,
) -> Request:
    """``GET /rooms/{roomId}/hierarchy`` (v1): a page of a space's tree, depth first.

    ``max_depth`` and ``suggested_only`` must stay the same on every page of one walk.
    """
    return Request(
        "GET",
        f"{CLIENT_V1}/rooms/{_seg(room_id)}/hierarchy",
        query=_query(
            suggested_only=True if suggested_only else None,
            limit=limit,
            max_depth=max_depth,
            **{"from": from_token},
        ),
    )


def room_summary(room_id_or_alias: str, via: Iterable[str] = ()) -> Request:
    """``GET /room_summary/{roomIdOrAlias}`` (v1): a room's summary, joined or not."""
    return Request(
        "GET",
        f"{CLIENT_V1}/room_summary/{_seg(room_id_or_alias)}",
        query=_query(via=list(via) or None),
    )


def knock(room_id_or_alias: str, via: Iterable[str] = (), reason: str | None = None) -> Request:
    """``POST /knock/{roomIdOrAlias}``: ask to be let into a room."""
    servers = list(via)
    body = {"reason": reason} if reason else {}
    return Request(
        "POST",
        f"{CLIENT_V3}/knock/{_seg(room_id_or_alias)}",
        query=_query(via=servers, server_name=servers),
        body=body,
    )


def unban(room_id: str, user_id: str, reason: str | None = None) -> Request:
    """``POST /rooms/{roomId}/unban``."""
    body: dict[str, Any] = {"user_id": user_id}
    if reason:
        body["reason"] = reason
    return Request("POST", f"{CLIENT_V3}/rooms/{_seg(room_id)}/unban", body=body)


def joined_rooms() -> Request:
    """``GET /joined_rooms``: the IDs of every room the user is in."""
    return Request("GET", f"{CLIENT_V3}/joined_rooms")


def get_account_data(user_id: str, event_type: str) -> Request:
    """``GET /user/{userId}/account_data/{type}``."""
    return Request("GET", f"{CLIENT_V3}/user/{_seg(user_id)}/account_data/{_seg(event_type)}")


def push_rules() -> Request:
    """``GET /pushrules/``: every rule of the user (the ``global`` scope)."""
    return Request("GET", f"{CLIENT_V3}/pushrules/")


def put_push_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> Request:
    """``PUT /pushrules/global/{kind}/{ruleId}``: add or replace one of the user's rules."""
    return Request(
        "PUT", f"{CLIENT_V3}/pushrules/global/{_seg(kind)}/{_seg(rule_id)}", body=dict(body)
    )


def delete_push_rule(kind: str, rule_id: str) -> Request:
    """``DELETE /pushrules/global/{kind}/{ruleId}``."""
    return Request("DELETE", f"{CLIENT_V3}/pushrules/global/{_seg(kind)}/{_seg(rule_id)}")


# -- server-side key backup (end_to_end_encryption.md, "Server-side key backups") ----------


def room_keys_version(version: str | None = None) -> Request:
    """``GET /room_keys/version[/{version}]``: the current backup (or one version) and its count."""
    suffix = f"/{_seg(version)}" if version is not None else ""
    return Request("GET", f"{CLIENT_V3}/room_keys/version{suffix}")


def create_room_keys_version(body: Mapping[str, Any]) -> Request:
    """``POST /room_keys/version``: a new backup version (``algorithm`` and signed ``auth_data``)."""
    return Request("POST", f"{CLIENT_V3}/room_keys/version", body=dict(body))


def update_room_keys_version(version: str, body: Mapping[str, Any]) -> Request:
    """``PUT /room_keys/version/{version}``: replace a version's ``auth_data`` (e.g. re-signed)."""
    return Request(
        "PUT", f"{CLIENT_V3}/room_keys/version/{_seg(version)}", body={**body, "version": version}
    )


def delete_room_keys_version(version: str) -> Request:
    """``DELETE /room_keys/version/{version}``: drop a backup version and every key in it."""
    return Request("DELETE", f"{CLIENT_V3}/room_keys/version/{_seg(version)}")


def _room_keys_path(room_id: str | None, session_id: str | None) -> str:
    path = f"{CLIENT_V3}/room_keys/keys"
    if room_id is not None:
        path += f"/{_seg(room_id)}"
        if session_id is not None:
            path += f"/{_seg(session_id)}"
    return path


def put_room_keys(
    version: str,
    body: Mapping[str, Any],
    *,
    room_id: str | None = None,
    session_id: str | None = None,
) -> Request:
    """``PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=``: store keys in the backup.

    The server keeps, per session, the better of what it had and what it is sent.
    A version that is not the current one is refused (403 ``M_WRONG_ROOM_KEYS_VERSION``).
    """
    return Request(
        "PUT", _room_keys_path(room_id, session_id), query=_query(version=version), body=dict(body)
    )


def get_room_keys(
    version: str, *, room_id: str | None = None, session_id: str | None = None
) -> Request:
    """``GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=``: read keys from the backup."""
    return Request("GET", _room_keys_path(room_id, session_id), query=_query(version=version))


def get_devices() -> Request:
    """``GET /devices``: every device of our account (name, last seen IP and time)."""
    return Request("GET", f"{CLIENT_V3}/devices")


def update_device(device_id: str, display_name: str) -> Request:
    """``PUT /devices/{deviceId}``: rename one of our devices."""
    return Request(
        "PUT", f"{CLIENT_V3}/devices/{_seg(device_id)}", body={"display_name": display_name}
    )


def delete_devices(device_ids: Iterable[str], auth: Mapping[str, Any] | None = None) -> Request:
    """``POST /delete_devices``: sign devices out (user-interactive auth: pass ``auth``)."""
    body: dict[str, Any] = {"devices": list(device_ids)}
    if auth is not None:
        body["auth"] = dict(auth)
    return Request("POST", f"{CLIENT_V3}/delete_devices", body=body)


def download_media(server: str, media_id: str, *, legacy: bool = False) -> Request:
    """``GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`` (authenticated
    media), or the unauthenticated ``/_matrix/media/v3/download`` of older servers."""
    if legacy:
        return Request(
            "GET",
            f"/_matrix/media/v3/download/{_seg(server)}/{_seg(media_id)}",
            authenticated=False,
            timeout=60.0,
        )
    return Request(
        "GET", f"/_matrix/client/v1/media/download/{_seg(server)}/{_seg(media_id)}", timeout=60.0
    )


def thumbnail_media(
    server: str, media_id: str, width: int, height: int, *, legacy: bool = False
) -> Request:
    """``GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}?width&height&method=scale``
    (authenticated media), or the legacy ``/_matrix/media/v3/thumbnail`` of older servers."""
    query = _query(width=width, height=height, method="scale")
    if legacy:
        return Request(
            "GET",
            f"/_matrix/media/v3/thumbnail/{_seg(server)}/{_seg(media_id)}",
            query=query,
            authenticated=False,
            timeout=60.0,
        )
    return Request(
        "GET",
        f"/_matrix/client/v1/media/thumbnail/{_seg(server)}/{_seg(media_id)}",
        query=query,
        timeout=60.0,
    )


def upload_media(data: bytes, filename: str | None, content_type: str) -> Request:
    """``POST /_matrix/media/v3/upload?filename=...`` with the file's bytes (no name for an
    encrypted file: the server must not learn it)."""
    return Request(
        "POST",
        "/_matrix/media/v3/upload",
        query=_query(filename=filename),
        content=data,
        content_type=content_type,
        timeout=120.0,
    )


def media_config(*, legacy: bool = False) -> Request:
    """``GET /_matrix/client/v1/media/config`` (the server's ``m.upload.size``), or the
    legacy ``/_matrix/media/v3/config`` of servers without authenticated media."""
    return Request(
        "GET", "/_matrix/media/v3/config" if legacy else "/_matrix/client/v1/media/config"
    )


def preview_url(url: str, ts: int | None = None, *, legacy: bool = False) -> Request:
    """``GET /_matrix/client/v1/media/preview_url?url=...`` (OpenGraph data the server
    fetched), or the legacy ``/_matrix/media/v3/preview_url``."""
    path = "/_matrix/media/v3/preview_url" if legacy else "/_matrix/client/v1/media/preview_url"
    return Request("GET", path, query=_query(url=url, ts=ts), timeout=30.0)
