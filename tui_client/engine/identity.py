"""Finding and inviting people by email through an identity server (v2 API).

The server comes from the settings (``identity_server``) or the homeserver's
``.well-known/matrix/client`` (``m.identity_server``). Before the first lookup the
user consents to sending (hashed) addresses to it; the consent is remembered per
server in the cache. The identity token is got by registering with an OpenID token
from the homeserver, and kept in the cache (which is encrypted); the server's terms
are accepted by the user (``TermsNeeded`` carries them to the UI) before it answers.
Lookups are hashed (``sha256``); plain addresses are sent only when the server offers
no hashing at all.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol import identity as ids
from ..protocol import requests as api
from ..protocol.errors import MatrixError, NetworkError

__all__ = [
    "ConsentNeeded",
    "EmailValidation",
    "GetMeta",
    "IdentityError",
    "IdentityService",
    "NoIdentityServer",
    "SetMeta",
    "TermsNeeded",
]

META_SERVER = "identity.server"
META_CONSENT = "identity.consent"
META_TOKEN = "identity.token"
META_ACCEPTED = "identity.accepted_terms"

GetMeta = Callable[[str], Awaitable[str | None]]
SetMeta = Callable[[str, str], Awaitable[None]]


class IdentityError(Exception):
    """An identity-server step failed; the message is meant for the user."""


class NoIdentityServer(IdentityError):
    """Neither the settings nor the homeserver name an identity server."""


class ConsentNeeded(IdentityError):
    """The user has not agreed to send addresses to this identity server yet."""

    def __init__(self, server: str) -> None:
        super().__init__(
            f"Looking people up by email sends hashed addresses to {server}; agree first."
        )
        self.server = server


class TermsNeeded(IdentityError):
    """The identity server's terms must be accepted before it answers."""

    def __init__(self, server: str, policies: list[ids.Policy]) -> None:
        names = ", ".join(p.title for p in policies) or "its terms"
        super().__init__(f"{server} asks you to accept {names} first.")
        self.server = server
        self.policies = policies


@dataclass(frozen=True, slots=True)
class EmailValidation:
    """A validation mail sent by the identity server: confirmed by the link in it."""

    address: str
    sid: str
    client_secret: str


class IdentityService:
    """The identity server of one account: consent, terms, token, lookups, invites, binds."""

    def __init__(
        self,
        connection: HomeserverConnection,
        user_id: str,
        get_meta: GetMeta,
        set_meta: SetMeta,
        *,
        configured: str | None = None,
    ) -> None:
        self._hs = connection
        self._user_id = user_id
        self._get = get_meta
        self._set = set_meta
        #: The server named in the settings (wins over the homeserver's suggestion).
        self.configured = configured.rstrip("/") if configured else None
        #: httpx transport of the identity-server connection (the homeserver's, as tests inject it).
        self._transport = connection.transport
        self._server: str | None = None
        self._connection: HomeserverConnection | None = None

    # -- which server --------------------------------------------------------------

    async def server(self) -> str:
        """The identity server's base URL; raises :class:`NoIdentityServer`."""
        if self.configured:
            return self.configured
        if self._server is None:
            self._server = await self._get(META_SERVER) or await self._from_well_known()
        if not self._server:
            raise NoIdentityServer(
                "No identity server: your homeserver suggests none. Set identity_server in the settings."
            )
        return self._server

    async def _from_well_known(self) -> str | None:
        try:
            status, body = await self._hs.get_url(f"{self._hs.base_url}/.well-known/matrix/client")
        except NetworkError:
            return None
        if status != 200:
            return None
        try:
            found = ids.identity_server_from_well_known(json.loads(body))
        except ValueError:
            return None
        if found:
            await self._set(META_SERVER, found)
        return found

    def _is(self, base_url: str, token: str | None) -> HomeserverConnection:
        if self._connection is None or self._connection.base_url != base_url:
            self._connection = HomeserverConnection(
                base_url, token, transport=self._transport, timeout=15.0
            )
        self._connection.access_token = token
        return self._connection

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()

    # -- consent and terms ------------------------------------------------------------

    async def consented(self) -> bool:
        """Whether the user agreed to look people up on the current server."""
        server = await self.server()
        return await self._get(META_CONSENT) == server

    async def consent(self) -> None:
        """Remember that the user agreed (for this server)."""
        await self._set(META_CONSENT, await self.server())

    async def accept_terms(self, policies: Sequence[ids.Policy]) -> None:
        """Tell the server the user accepts ``policies`` (shown to them by the UI)."""
        server = await self.server()
        token = await self._token(server)
        await self._call(
            server, self._is(server, token).send(ids.accept_terms([p.url for p in policies]))
        )
        await self._set(
            META_ACCEPTED, json.dumps({"server": server, "urls": sorted(p.url for p in policies)})
        )

    async def terms(self) -> list[ids.Policy]:
        """The server's terms (all its policies)."""
        server = await self.server()
        return ids.parse_terms(await self._call(server, self._is(server, None).send(ids.terms())))

    async def _check_terms(self, server: str) -> None:
        policies = await self.terms()
        if not policies:
            return
        raw = await self._get(META_ACCEPTED)
        accepted: set[str] = set()
        if raw:
            data = json.loads(raw)
            if data.get("server") == server:
                accepted = set(data.get("urls", ()))
        missing = [p for p in policies if p.url not in accepted]
        if missing:
            raise TermsNeeded(server, missing)

    # -- token ---------------------------------------------------------------------------

    async def _token(self, server: str) -> str:
        raw = await self._get(META_TOKEN)
        if raw:
            data = json.loads(raw)
            if data.get("server") == server and isinstance(data.get("token"), str):
                return str(data["token"])
        try:
            openid = await self._hs.send(ids.openid_token(self._user_id))
        except (MatrixError, NetworkError) as error:
            raise IdentityError(
                f"The homeserver gave no OpenID token for the identity server: {error}"
            ) from error
        answer = await self._call(server, self._is(server, None).send(ids.register(openid)))
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise IdentityError(f"{ids.id_server_name(server)} gave no identity token")
        await self._set(META_TOKEN, json.dumps({"server": server, "token": token}))
        return token

    async def _forget_token(self) -> None:
        await self._set(META_TOKEN, "")

    async def _call(self, server: str, request: Awaitable[Any]) -> Any:
        name = ids.id_server_name(server)
        try:
            return await request
        except NetworkError as error:
            raise IdentityError(f"The identity server {name} cannot be reached: {error}") from error
        except MatrixError as error:
            if error.errcode == "M_TERMS_NOT_SIGNED":
                raise TermsNeeded(server, []) from error
            raise IdentityError(f"The identity server {name} refused: {error}") from error

    async def ready(self) -> tuple[str, str]:
        """The server and a usable token, once consent is given and terms accepted."""
        server = await self.server()
        if not await self.consented():
            raise ConsentNeeded(ids.id_server_name(server))
        await self._check_terms(server)
        return server, await self._token(server)

    async def _authed(self, send: Callable[[HomeserverConnection], Awaitable[Any]]) -> Any:
        """Run ``send`` on the identity server; a rejected token is replaced once."""
        server, token = await self.ready()
        try:
            return await send(self._is(server, token))
        except MatrixError as error:
            if error.errcode != "M_UNKNOWN_TOKEN" and error.status != 401:
                if error.errcode == "M_TERMS_NOT_SIGNED":
                    raise TermsNeeded(server, []) from error
                raise IdentityError(
                    f"The identity server {ids.id_server_name(server)} refused: {error}"
                ) from error
        except NetworkError as error:
            raise IdentityError(
                f"The identity server {ids.id_server_name(server)} cannot be reached: {error}"
            ) from error
        await self._forget_token()
        token = await self._token(server)
        return await self._call(server, send(self._is(server, token)))

    # -- lookups -----------------------------------------------------------------------

    async def lookup(self, addresses: Sequence[tuple[str, str]]) -> dict[str, str]:
        """``{address: user_id}`` for the ``(medium, address)`` pairs the server knows."""

        async def run(conn: HomeserverConnection) -> dict[str, str]:
            details = await conn.send(ids.hash_details())
            algorithms = details.get("algorithms", []) if isinstance(details, dict) else []
            pepper = str(details.get("lookup_pepper", "")) if isinstance(details, dict) else ""
            wanted: dict[str, str] = {}
            if "sha256" in algorithms:
                for medium, address in addresses:
                    norm = ids.normalise_address(medium, address)
                    wanted[ids.hash_address(norm, medium, pepper)] = address
                answer = await conn.send(ids.lookup(wanted, "sha256", pepper))
            elif "none" in algorithms:
                for medium, address in addresses:
                    wanted[f"{ids.normalise_address(medium, address)} {medium}"] = address
                answer = await conn.send(ids.lookup(wanted, "none", pepper))
            else:
                raise IdentityError("The identity server offers no lookup this client can use.")
            return ids.parse_lookup(answer, wanted)

        result: dict[str, str] = await self._authed(run)
        return result

    async def find_email(self, address: str) -> str | None:
        """The Matrix user who bound ``address``, or None."""
        return (await self.lookup([("email", address)])).get(address)

    # -- invites -----------------------------------------------------------------------

    async def invite_email(self, room_id: str, address: str) -> str | None:
        """Invite ``address`` to ``room_id``: the user it is bound to, else a third-party
        invite mailed by the identity server. Returns the user invited, or None."""
        user_id = await self.find_email(address)
        if user_id is not None:
            await self._hs.send(api.invite(room_id, user_id))
            return user_id
        server, token = await self.ready()
        norm = ids.normalise_address("email", address)
        await self._hs.send(
            ids.invite_3pid(room_id, ids.id_server_name(server), token, "email", norm)
        )
        return None

    # -- our own addresses ----------------------------------------------------------------

    async def request_email_validation(self, address: str) -> EmailValidation:
        """Have the identity server mail a confirmation link to ``address``."""
        client_secret = secrets.token_urlsafe(24)
        norm = ids.normalise_address("email", address)
        answer = await self._authed(
            lambda conn: conn.send(ids.request_email_token(norm, client_secret))
        )
        sid = answer.get("sid") if isinstance(answer, dict) else None
        if not isinstance(sid, str):
            raise IdentityError("The identity server did not start a validation")
        return EmailValidation(norm, sid, client_secret)

    async def bind_email(self, validation: EmailValidation) -> None:
        """After the user followed the link: bind the address to this account."""
        server, token = await self.ready()
        try:
            await self._hs.send(
                ids.bind_3pid(
                    validation.client_secret, validation.sid, ids.id_server_name(server), token
                )
            )
        except MatrixError as error:
            if error.errcode in (
                "M_SESSION_NOT_VALIDATED",
                "M_THREEPID_AUTH_FAILED",
                "M_NO_VALID_SESSION",
            ):
                raise IdentityError(
                    f"{validation.address} is not confirmed yet: open the link in the mail, then try again."
                ) from error
            raise

    async def unbind_email(self, address: str) -> None:
        """Remove the binding of ``address`` from the identity server."""
        server = await self.server()
        norm = ids.normalise_address("email", address)
        await self._hs.send(ids.unbind_3pid("email", norm, ids.id_server_name(server)))
