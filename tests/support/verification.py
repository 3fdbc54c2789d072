"""A verification flow snapshot to feed the dialog and the engine in tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from tui_client.crypto.verification import Verification, VerificationState

_PLAIN = Verification(
    id="v",
    flow_id="t",
    room_id=None,
    other_user_id="@bob:x",
    other_device_id="BOB1",
    we_requested=True,
    state=VerificationState.REQUESTED,
    created_ms=0,
    expires_ms=600_000,
    methods=("m.sas.v1",),
    emoji=None,
    decimals=None,
    keys={},
    verified_keys=(),
    cancellation=None,
)


def verification(**fields: Any) -> Verification:
    """A to-device SAS request from ``@bob:x``'s ``BOB1``, with ``fields`` replaced."""
    return dataclasses.replace(_PLAIN, **fields)
