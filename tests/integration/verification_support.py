"""Helpers for the verification tests against Synapse: flows, states, trust."""

from __future__ import annotations

from tui_client.crypto.verification import Verification, VerificationState
from tui_client.engine.client import MatrixClient
from tui_client.engine.updates import CrossSigningChanged

from .e2ee_support import until


def flow_of(client: MatrixClient, verification_id: str) -> Verification:
    """The latest snapshot of a flow the client knows."""
    flow = client.verification.get(verification_id)
    assert flow is not None, f"{client.user_id}/{client.device_id} has no flow {verification_id}"
    return flow


async def reach(
    client: MatrixClient, verification_id: str, state: VerificationState, timeout: float = 30.0
) -> Verification:
    """Wait until a flow is in ``state`` (failing early, with the reason, if it is cancelled)."""

    def there() -> bool:
        flow = client.verification.get(verification_id)
        if (
            flow is not None
            and flow.state is VerificationState.CANCELLED
            and state is not VerificationState.CANCELLED
        ):
            raise AssertionError(f"the verification was cancelled: {flow.cancellation}")
        return flow is not None and flow.state is state

    await until(
        there, f"{client.device_id}'s verification {verification_id} to be {state.value}", timeout
    )
    return flow_of(client, verification_id)


async def incoming(client: MatrixClient, timeout: float = 30.0) -> Verification:
    """Wait for a request the user of ``client`` is asked to answer; the oldest one."""
    await until(
        lambda: bool(client.verification.incoming()),
        f"an incoming request at {client.device_id}",
        timeout,
    )
    return client.verification.incoming()[0]


def cross_signing(client: MatrixClient) -> CrossSigningChanged:
    """The client's last published cross-signing state."""
    state = client.cross_signing.state
    assert state is not None, "no cross-signing state published yet"
    return state


async def cross_signing_complete(client: MatrixClient, timeout: float = 30.0) -> None:
    """Wait until the client holds the account's whole, trusted, identity and is signed by it."""
    await until(
        lambda: (
            client.cross_signing.state is not None and client.cross_signing.state.status.complete
        ),
        f"{client.device_id}'s cross-signing to be complete: {client.cross_signing.state}",
        timeout,
    )


async def compare_and_confirm(
    left: MatrixClient, left_id: str, right: MatrixClient, right_id: str
) -> None:
    """Both sides show the same emoji and numbers; both users confirm; both end verified."""
    ours = await reach(left, left_id, VerificationState.KEYS_EXCHANGED)
    theirs = await reach(right, right_id, VerificationState.KEYS_EXCHANGED)
    assert ours.emoji is not None and ours.emoji == theirs.emoji and len(ours.emoji) == 7
    assert ours.decimals is not None and ours.decimals == theirs.decimals
    await left.verification.confirm(left_id)
    await right.verification.confirm(right_id)
    await reach(left, left_id, VerificationState.DONE)
    await reach(right, right_id, VerificationState.DONE)
