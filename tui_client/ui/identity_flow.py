"""The identity-server steps the user takes part in: consent before the first lookup,
the server's terms, and the link mailed to confirm an address (engine/identity.py).

Each function runs in a worker of ``screen`` (it waits on dialogs) and reports a
failure on screen as :class:`~.messages.ActionFailed`; it returns ``None`` then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from textual.screen import Screen

from ..engine.identity import ConsentNeeded, IdentityError, IdentityService, TermsNeeded
from ..protocol.errors import MatrixError, NetworkError
from ..protocol.identity import is_email
from ..protocol.sanitize import clean_line
from .messages import ActionFailed

__all__ = ["bind_email", "find_by_email", "invite_by_email", "is_email", "with_identity"]

T = TypeVar("T")


async def with_identity(
    screen: Screen[Any], identity: IdentityService, step: Callable[[], Awaitable[T]]
) -> T | None:
    """Run ``step``, asking for consent and the terms' acceptance when the server needs them."""
    from .screens.dialogs import ConfirmDialog

    for _ in range(4):
        try:
            return await step()
        except ConsentNeeded as needed:
            question = (
                f"Find people by email or phone? The addresses you look up are sent, hashed, to the "
                f"identity server {clean_line(needed.server, 80)}. You are asked once for this server."
            )
            if not await screen.app.push_screen_wait(ConfirmDialog(question, "Agree")):
                screen.post_message(
                    ActionFailed(
                        "Nothing was looked up: you did not agree to use the identity server."
                    )
                )
                return None
            await identity.consent()
        except TermsNeeded as needed:
            policies = needed.policies or await identity.terms()
            lines = "\n".join(
                f"• {clean_line(p.title, 60)} ({p.version}): {clean_line(p.url, 120)}"
                for p in policies
            )
            question = (
                f"The identity server {clean_line(needed.server, 80)} asks you to accept:\n{lines}"
            )
            if not policies or not await screen.app.push_screen_wait(
                ConfirmDialog(question, "Accept")
            ):
                screen.post_message(
                    ActionFailed(
                        "Nothing was looked up: the identity server's terms were not accepted."
                    )
                )
                return None
            await _guard(screen, identity.accept_terms(policies))
        except IdentityError as error:
            screen.post_message(ActionFailed(str(error)))
            return None
        except (MatrixError, NetworkError) as error:
            screen.post_message(ActionFailed(f"Failed: {error}"))
            return None
    return None


async def _guard(screen: Screen[Any], step: Awaitable[object]) -> None:
    try:
        await step
    except (IdentityError, MatrixError, NetworkError) as error:
        screen.post_message(ActionFailed(f"Failed: {error}"))
        raise IdentityError(str(error)) from error


async def find_by_email(screen: Screen[Any], identity: IdentityService, address: str) -> str | None:
    """The Matrix user bound to ``address``; says so on screen when there is none."""
    found = await with_identity(screen, identity, lambda: identity.lookup([("email", address)]))
    if found is None:
        return None
    user_id = found.get(address)
    if user_id is None:
        screen.post_message(
            ActionFailed(
                f"No one on Matrix has linked {clean_line(address, 80)} on the identity server."
            )
        )
    return user_id


async def invite_by_email(
    screen: Screen[Any], identity: IdentityService, room_id: str, address: str
) -> None:
    """Invite the user bound to ``address``, else mail them an invitation (pending until they join)."""
    sentinel = object()
    result = await with_identity(
        screen, identity, lambda: _invite(identity, room_id, address, sentinel)
    )
    if result is None:
        return
    if result is sentinel:
        screen.notify(
            f"Invitation mailed to {clean_line(address, 80)}: pending until they join.",
            markup=False,
        )
    else:
        screen.notify(
            f"Invited {clean_line(str(result), 80)} (found by {clean_line(address, 80)}).",
            markup=False,
        )


async def _invite(
    identity: IdentityService, room_id: str, address: str, sentinel: object
) -> object:
    user_id = await identity.invite_email(room_id, address)
    return sentinel if user_id is None else user_id


async def bind_email(screen: Screen[Any], identity: IdentityService, address: str) -> bool:
    """Link ``address`` to this account: the server mails a link, the user follows it and
    comes back to confirm here."""
    from .screens.dialogs import ConfirmDialog

    validation = await with_identity(
        screen, identity, lambda: identity.request_email_validation(address)
    )
    if validation is None:
        return False
    while True:
        question = (
            f"A link was mailed to {clean_line(validation.address, 80)}. Open it, then choose Continue "
            "to link the address to your account."
        )
        if not await screen.app.push_screen_wait(ConfirmDialog(question, "Continue")):
            screen.post_message(
                ActionFailed(f"{clean_line(validation.address, 80)} was not linked.")
            )
            return False
        try:
            await identity.bind_email(validation)
        except IdentityError as error:
            screen.post_message(ActionFailed(str(error)))
            continue
        except (MatrixError, NetworkError) as error:
            screen.post_message(ActionFailed(f"Failed: {error}"))
            return False
        screen.notify(
            f"{clean_line(validation.address, 80)} is linked: people who know it can find you.",
            markup=False,
        )
        return True
