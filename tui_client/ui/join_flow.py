"""Joining from anywhere in the UI: queue the join, report it, explain a refusal.

When a room refuses the user because it is open to members of a space only, the
user is told which space, and offered to join it first (then the room).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..engine.joins import JoinFailed, JoinJob, RequiredSpace
from ..protocol.commands import CommandError
from ..protocol.sanitize import clean_line

if TYPE_CHECKING:
    from .app_interface import ClientApp


class JoinFlow:
    """Joins on behalf of the app (its client's join queue does the work)."""

    def __init__(self, app: ClientApp) -> None:
        self.app = app

    def join(
        self, target: str, via: Sequence[str] = (), *, label: str = "", open_after: bool = False
    ) -> JoinJob | None:
        """Queue a join; the outcome is shown as a notification (or a question)."""
        client = self.app.client
        if client is None:
            return None
        try:
            job = client.joins.enqueue(target, via, label=label)
        except CommandError as error:
            self.app.notify(clean_line(str(error)), severity="error", markup=False)
            return None
        self.app.run_worker(
            self._follow(job, tuple(via), open_after), group="joins", exit_on_error=False
        )
        return job

    def join_many(self, targets: Sequence[tuple[str, Sequence[str]]]) -> list[JoinJob]:
        """Queue several joins; one notification says how it went."""
        client = self.app.client
        if client is None or not targets:
            return []
        jobs = client.joins.enqueue_many(targets)
        self.app.run_worker(self._follow_batch(jobs), group="joins", exit_on_error=False)
        return jobs

    async def _follow(self, job: JoinJob, via: tuple[str, ...], open_after: bool) -> None:
        client = self.app.client
        try:
            room_id = await job.wait()
        except JoinFailed as failure:
            if failure.required:
                self._offer_space(job, via, failure, open_after)
            else:
                self.app.notify(
                    clean_line(failure.message), severity="error", markup=False, timeout=8
                )
            return
        self.app.notify(f"Joined {clean_line(job.label)}", markup=False)
        if (
            open_after
            and client is not None
            and await client.joins.wait_for_room(room_id, timeout=20)
        ):
            self.app.show_room(room_id)

    async def _follow_batch(self, jobs: list[JoinJob]) -> None:
        failures: list[str] = []
        for job in jobs:
            try:
                await job.wait()
            except JoinFailed as failure:
                failures.append(f"{job.label}: {failure.message}")
        joined = len(jobs) - len(failures)
        text = f"Joined {joined} of {len(jobs)} room{'s' if len(jobs) != 1 else ''}"
        if failures:
            self.app.notify(
                clean_line(text + ". " + " ".join(failures[:3]), 400),
                severity="warning",
                markup=False,
                timeout=10,
            )
        else:
            self.app.notify(text, markup=False)

    def _offer_space(
        self, job: JoinJob, via: tuple[str, ...], failure: JoinFailed, open_after: bool
    ) -> None:
        from .screens.dialogs import ChoiceDialog, ConfirmDialog

        spaces = {space.room_id: space for space in failure.required}

        def chosen(space_id: str | None) -> None:
            space = spaces.get(space_id or "")
            if space is not None:
                self.join_via_space(job.target, via, space, open_after=open_after)

        message = clean_line(failure.message, 400)
        if len(spaces) == 1:
            (space,) = spaces.values()
            self.app.push_screen(
                ConfirmDialog(
                    f"{message}\n\nJoin {clean_line(space.name)} now, then {clean_line(job.label)}?",
                    f"Join {clean_line(space.name, 30)}",
                ),
                lambda yes: chosen(space.room_id) if yes else None,
            )
        else:
            self.app.push_screen(
                ChoiceDialog(
                    message + "\n\nJoin which space first?",
                    [(s.room_id, clean_line(s.name)) for s in spaces.values()],
                ),
                chosen,
            )

    def join_via_space(
        self, target: str, via: Sequence[str], space: RequiredSpace, *, open_after: bool = False
    ) -> None:
        """Join ``space``, then ``target``."""
        client = self.app.client
        if client is None:
            return
        first, then = client.joins.enqueue_via_space(target, via, space)
        self.app.run_worker(self._follow(first, (), False), group="joins", exit_on_error=False)
        self.app.run_worker(
            self._follow(then, tuple(via), open_after), group="joins", exit_on_error=False
        )
