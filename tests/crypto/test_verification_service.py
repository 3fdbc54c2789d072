"""The engine's side of verification (``VerificationService``) and the dialog, against stubs:
room messages keep their order, accepting waits for the other device's keys, starting SAS
twice is harmless, and the dialog offers no "start" while the client starts by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, cast

from textual.app import App
from textual.widgets import Button, Static

from tui_client.crypto.requests import RoomMessageRequest
from tui_client.crypto.types import RequestOutcome
from tui_client.crypto.verification import Verification, VerificationError, VerificationState
from tui_client.engine.core import Core
from tui_client.engine.devices import DeviceService
from tui_client.engine.encryption import Encryption
from tui_client.engine.verification import VerificationService
from tui_client.protocol.errors import NetworkError
from tui_client.protocol.requests import Request
from tui_client.ui.screens.verification import VerificationDialog

from ..support.verification import verification

ALICE, BOB = "@alice:x", "@bob:y"


def _flow(**changes: Any) -> Verification:
    return verification(
        **{
            "id": "flow-1",
            "flow_id": "$request",
            "room_id": "!dm:x",
            "other_user_id": BOB,
            "other_device_id": "B1",
            "state": VerificationState.READY,
            **changes,
        }
    )


class _Machine:
    """The few ``OlmMachine`` calls the service makes, scripted."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.room_messages: list[RoomMessageRequest] = []
        self.flow = _flow()
        self.start: Callable[[], Verification] = lambda: self.flow

    def outgoing_room_messages(self) -> list[RoomMessageRequest]:
        return list(self.room_messages)

    def mark_request_as_sent(self, request_id: str, response: Any) -> RequestOutcome:
        self.room_messages = [r for r in self.room_messages if r.request_id != request_id]
        return RequestOutcome()

    def mark_request_as_failed(self, request_id: str, permanent: bool = False) -> None:
        self.room_messages = [r for r in self.room_messages if r.request_id != request_id]

    def expire_verifications(self) -> list[Verification]:
        return []

    def verifications(self, *, active_only: bool = True) -> list[Verification]:
        return []

    def get_verification(self, verification_id: str) -> Verification | None:
        return self.flow if verification_id == self.flow.id else None

    def accept_verification(self, verification_id: str) -> Verification:
        self.log.append("accept")
        self.flow = replace(self.flow, state=VerificationState.READY)
        return self.flow

    def start_sas(self, verification_id: str) -> Verification:
        self.log.append("start")
        return self.start()


class _Encryption:
    def __init__(self, machine: _Machine) -> None:
        self.machine = machine

    def require_machine(self, error: type[Exception]) -> _Machine:
        return self.machine

    async def call(self, action: Callable[[], Any]) -> Any:
        return action()

    def wake(self) -> None:
        pass


class _Connection:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.failures: set[str] = set()

    async def send(self, request: Request) -> dict[str, Any]:
        txn = request.path.rsplit("/", 1)[-1]
        if txn in self.failures:
            self.failures.discard(txn)
            raise NetworkError("timeout", "no answer")
        self.log.append(f"sent {txn}")
        return {"event_id": f"${txn}"}


class _Devices:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def await_queried(self, user_ids: list[str], timeout: float = 15.0) -> bool:
        self.log.append(f"query {','.join(user_ids)}")
        await asyncio.sleep(0)
        return True

    async def device_name(self, user_id: str, device_id: str) -> str | None:
        return None


def _service() -> tuple[VerificationService, _Machine, _Connection, list[str], list[Any]]:
    log: list[str] = []
    published: list[Any] = []
    machine = _Machine(log)
    connection = _Connection(log)
    # Built alone: only the narrow things the service uses, no client.
    core = SimpleNamespace(
        user_id=ALICE,
        device_id="A1",
        connection=connection,
        rooms={
            "!dm:x": SimpleNamespace(encrypted=False),
            "!other:x": SimpleNamespace(encrypted=False),
        },
        publish=published.append,
    )

    async def no_dm(user_id: str) -> str:
        raise AssertionError("no DM is made here")

    async def no_wait(room_id: str, timeout: float) -> bool:
        raise AssertionError("no room is waited for here")

    service = VerificationService(
        cast(Core, core),
        cast(Encryption, _Encryption(machine)),
        cast(DeviceService, _Devices(log)),
        cross_signing_changed=lambda: log.append("cross-signing refresh"),
        create_dm=no_dm,
        wait_for_room=no_wait,
    )
    service.tick_seconds = 3600.0
    return service, machine, connection, log, published


def _message(txn: str, event_type: str, room_id: str = "!dm:x") -> RoomMessageRequest:
    return RoomMessageRequest(txn, room_id, event_type, {"m.relates_to": {"event_id": "$request"}})


async def test_a_room_message_to_retry_holds_back_the_ones_after_it() -> None:
    service, machine, connection, log, _ = _service()
    machine.room_messages = [
        _message("mac", "m.key.verification.mac"),
        _message("done", "m.key.verification.done"),
        _message("elsewhere", "m.key.verification.ready", "!other:x"),
    ]
    connection.failures.add("mac")
    await service._pump()
    # The done waits for its mac; another room is not held up.
    assert log == ["sent elsewhere"]
    await service._pump()  # the mac's retry is not due yet: still nothing of that room
    assert log == ["sent elsewhere"]
    service._retry_at.clear()
    await service._pump()
    assert log == ["sent elsewhere", "sent mac", "sent done"]
    service.stop()


async def test_accepting_waits_for_the_other_users_keys() -> None:
    service, _, _, log, _ = _service()
    service._apply([_flow(we_requested=False, state=VerificationState.INCOMING)])
    await service.accept("flow-1")
    assert log == [f"query {BOB}", "accept"]
    service.stop()


async def test_starting_sas_already_started_is_nothing_to_do() -> None:
    service, machine, _, _, _ = _service()
    service.auto_start = False
    service._apply([_flow(keys={"ed25519:B1": "key"})])
    started = _flow(keys={"ed25519:B1": "key"}, state=VerificationState.STARTED)

    def too_late() -> Verification:
        # The automatic start (or the other side's) came first.
        machine.flow = started
        raise VerificationError("cannot start SAS in state started")

    machine.start = too_late
    assert await service.start_sas("flow-1") == started
    assert service.get("flow-1") == started
    service.stop()


async def test_the_automatic_start_is_announced_before_the_flow() -> None:
    service, machine, _, log, _ = _service()
    seen: list[bool] = []
    core = cast(Any, service.core)
    core.publish = lambda update: seen.append(service.auto_starting(update.verification.id))
    gate = asyncio.Event()
    machine.flow = _flow(keys={"ed25519:B1": "key"})

    async def held_query(user_ids: list[str], timeout: float = 15.0) -> bool:
        await gate.wait()
        return True

    cast(Any, service._devices).await_queried = held_query
    machine.start = lambda: replace(machine.flow, state=VerificationState.STARTED)
    service._apply([_flow()])  # ours, ready, keys not fixed yet: the start waits for them
    assert seen == [True] and service.auto_starting("flow-1")
    gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not service.auto_starting("flow-1")
    assert log == ["start"]
    service.stop()


class _DialogApp(App[None]):
    def __init__(self, client: Any, flow: Verification) -> None:
        super().__init__()
        self.stub = client
        self.flow = flow

    def on_mount(self) -> None:
        self.push_screen(VerificationDialog(self.stub, self.flow))


def _visible(dialog: VerificationDialog) -> set[str]:
    return {b.id or "" for b in dialog.query(Button) if b.display}


async def test_the_dialog_offers_no_start_while_the_client_starts_by_itself() -> None:
    starting = {"flow-1"}
    client = SimpleNamespace(
        user_id=ALICE,
        verification=SimpleNamespace(
            auto_starting=lambda verification_id: verification_id in starting
        ),
        devices=_Devices([]),
    )
    flow = _flow()
    app = _DialogApp(client, flow)
    async with app.run_test() as pilot:
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, VerificationDialog)
        assert _visible(dialog) == {"cancel"}
        assert "Starting" in str(dialog.query_one("#verification-status", Static).render())
        # The automatic start did not work out: the user may start.
        starting.clear()
        dialog.update_flow(flow)
        await pilot.pause()
        assert _visible(dialog) == {"start", "cancel"}
        # The other side's request, answered here: nothing starts by itself.
        dialog.update_flow(_flow(we_requested=False))
        await pilot.pause()
        assert _visible(dialog) == {"start", "cancel"}
