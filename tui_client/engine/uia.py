"""User-interactive authentication (UIA): confirming a sensitive request with the password.

Some endpoints (``POST /delete_devices``, ``POST /keys/device_signing/upload`` when an
identity exists, ...) answer a first attempt with ``401`` and a description of the
authentication they want: ``flows`` (lists of stages), a ``session`` and the stages
already ``completed``. This module does the one stage a terminal client can do
itself, ``m.login.password``, and says plainly when the server wants another.

Use::

    auth = UserInteractiveAuth(client.connection, client.user_id, ask_password)
    answer = await auth.send(lambda auth_dict: api.delete_devices(ids, auth_dict),
                             purpose="Sign out the device ABCDEF")

``build`` is called with ``None`` for the first attempt and then with the ``auth``
dict to put in the body. ``ask_password(prompt)`` is supplied by the UI (or a test,
or a bot): it shows ``prompt`` and returns the password, or ``None`` when the user
declines, which raises :class:`AuthCancelled`. A wrong password asks again (up to
``attempts`` times). The password is used for this one request and never kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..net.http import HomeserverConnection
from ..protocol.errors import MatrixError
from ..protocol.requests import Request

__all__ = [
    "OAUTH_STAGES",
    "PASSWORD_STAGE",
    "ApprovalPrompt",
    "AuthCancelled",
    "AuthChallenge",
    "AuthFailed",
    "AuthUnsupported",
    "PasswordPrompt",
    "UserInteractiveAuth",
    "fixed_password",
    "password_auth",
]

PASSWORD_STAGE = "m.login.password"
#: Approving the request on the account management page of an OAuth server (spec v1.17),
#: and its unstable name (MSC4312), which Synapse offers beside it.
OAUTH_STAGES = ("m.oauth", "org.matrix.cross_signing_reset")

#: Shows its argument (what the password is for, and why it is asked again) and returns
#: the password, or ``None`` if the user declines.
PasswordPrompt = Callable[[str], Awaitable[str | None]]

#: Shows (and opens) the URL where the user approves the request, with what it is for;
#: returns True once the user says it is done, False if they give up.
ApprovalPrompt = Callable[[str, str], Awaitable[bool]]


class AuthCancelled(Exception):
    """The user declined to give their password: the request was not made."""


class AuthUnsupported(Exception):
    """The server wants an authentication stage this client cannot do (e.g. single sign-on)."""


class AuthFailed(Exception):
    """The password was refused too many times (or the server refused the authentication)."""


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """The server's ``401`` answer describing the authentication it wants."""

    session: str | None
    #: Each flow is the list of stage types to complete, in order.
    flows: tuple[tuple[str, ...], ...]
    completed: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    #: ``errcode`` of a failed attempt (``M_FORBIDDEN`` for a wrong password), if any.
    errcode: str | None = None
    error: str | None = None

    @classmethod
    def from_error(cls, error: MatrixError) -> AuthChallenge | None:
        """The challenge in a ``401`` error, or ``None`` if it is not a UIA answer."""
        body = error.body
        if error.status != 401 or not isinstance(body.get("flows"), list):
            return None
        flows: list[tuple[str, ...]] = []
        for flow in body["flows"]:
            stages = flow.get("stages") if isinstance(flow, dict) else None
            if isinstance(stages, list) and all(isinstance(s, str) for s in stages):
                flows.append(tuple(stages))
        completed = body.get("completed")
        session = body.get("session")
        params = body.get("params")
        return cls(
            session=session if isinstance(session, str) else None,
            flows=tuple(flows),
            completed=tuple(c for c in completed if isinstance(c, str))
            if isinstance(completed, list)
            else (),
            params=params if isinstance(params, dict) else {},
            errcode=error.errcode if "errcode" in body else None,
            error=error.message or None,
        )

    def remaining(self) -> list[tuple[str, ...]]:
        """For each flow consistent with what is completed, the stages still to do."""
        done = self.completed
        return [flow[len(done) :] for flow in self.flows if flow[: len(done)] == done]

    def approval_url(self) -> str | None:
        """The account page where the user approves this request (``m.oauth``), if offered."""
        for rest in self.remaining():
            if len(rest) == 1 and rest[0] in OAUTH_STAGES:
                params = self.params.get(rest[0])
                url = params.get("url") if isinstance(params, dict) else None
                if isinstance(url, str) and url.startswith(("https://", "http://")):
                    return url
        return None

    @property
    def password_suffices(self) -> bool:
        """Some flow needs nothing more than the password stage."""
        return any(rest == (PASSWORD_STAGE,) for rest in self.remaining())


def password_auth(user_id: str, password: str, session: str | None) -> dict[str, Any]:
    """The ``auth`` dict of the ``m.login.password`` stage, identifying the user by ID."""
    auth: dict[str, Any] = {
        "type": PASSWORD_STAGE,
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if session is not None:
        auth["session"] = session
    return auth


def fixed_password(password: str) -> PasswordPrompt:
    """A prompt that always answers ``password`` (bots, tests)."""

    async def ask(_prompt: str) -> str | None:
        return password

    return ask


class UserInteractiveAuth:
    """Sends requests that may need the user's password (see the module documentation)."""

    def __init__(
        self,
        connection: HomeserverConnection,
        user_id: str,
        ask_password: PasswordPrompt | None,
        *,
        attempts: int = 3,
        approve: ApprovalPrompt | None = None,
    ) -> None:
        self.connection = connection
        self.user_id = user_id
        self.ask_password = ask_password
        self.attempts = attempts
        self.approve = approve

    async def send(self, build: Callable[[dict[str, Any] | None], Request], *, purpose: str) -> Any:
        """Send ``build(None)``; if the server asks, authenticate with the password and resend.

        Raises :class:`AuthCancelled`, :class:`AuthUnsupported`, :class:`AuthFailed`,
        or the request's own :class:`MatrixError` / ``NetworkError``.
        """
        try:
            return await self.connection.send(build(None))
        except MatrixError as error:
            challenge = AuthChallenge.from_error(error)
            if challenge is None:
                raise
        if challenge.approval_url() is not None and not challenge.password_suffices:
            return await self._approve_in_browser(build, challenge, purpose)
        prompt = f"{purpose}: confirm with the password of {self.user_id}"
        for _ in range(self.attempts):
            if not challenge.password_suffices:
                stages = ", ".join(" then ".join(flow) or "none" for flow in challenge.remaining())
                raise AuthUnsupported(
                    "the server asks for an authentication this client cannot do "
                    f"({stages or 'no flow offered'}); do this from another client (e.g. Element)"
                )
            if self.ask_password is None:
                raise AuthCancelled("a password is needed, and there is no way to ask for it here")
            password = await self.ask_password(prompt)
            if password is None or password == "":
                raise AuthCancelled("cancelled: the password was not given")
            try:
                return await self.connection.send(
                    build(password_auth(self.user_id, password, challenge.session))
                )
            except MatrixError as error:
                again = AuthChallenge.from_error(error)
                if again is None:
                    raise
                challenge = again
            if challenge.errcode == "M_FORBIDDEN":
                prompt = f"Wrong password. {purpose}: try again"
            else:
                prompt = f"{purpose}: the server asks again ({challenge.error or 'not accepted'})"
        raise AuthFailed("the password was refused: nothing was changed")

    async def _approve_in_browser(
        self,
        build: Callable[[dict[str, Any] | None], Request],
        challenge: AuthChallenge,
        purpose: str,
    ) -> Any:
        """The ``m.oauth`` stage: the user approves on the account page, then we retry
        with just the session (as the spec says)."""
        for _ in range(self.attempts):
            url = challenge.approval_url()
            if url is None:
                break
            if self.approve is None:
                raise AuthUnsupported(f"approve this at {url} in a browser, then try again")
            if not await self.approve(url, purpose):
                raise AuthCancelled("cancelled: it was not approved")
            auth = {"session": challenge.session} if challenge.session is not None else {}
            try:
                return await self.connection.send(build(auth))
            except MatrixError as error:
                again = AuthChallenge.from_error(error)
                if again is None:
                    raise
                challenge = again
        raise AuthFailed(
            "the server still wants it approved on the account page: nothing was changed"
        )
