"""Users registered on the test homeserver."""

from __future__ import annotations

from collections.abc import Callable

from tui_client.devtools.synapse import RegisteredUser

__all__ = ["MakeUser"]

#: The ``make_user`` fixture (tests/conftest.py): ``make_user(prefix="user", displayname=None)``.
MakeUser = Callable[..., RegisteredUser]
