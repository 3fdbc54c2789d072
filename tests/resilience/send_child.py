"""A client process for the kill -9 sending test: ``python -m tests.resilience.send_child``.

``send BASE_DIR ROOM_ID BODY...``: restore the saved session, sync once, queue each body
(durably, in the outbox) and keep sending until killed. ``drain BASE_DIR``: restore,
sync, and exit 0 once nothing is pending in the outbox (printing ``drained``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui_client.engine.client import MatrixClient


async def main(mode: str, base_dir: str, args: list[str]) -> int:
    client = MatrixClient.restore(base_dir=Path(base_dir), long_poll_ms=1000)
    if client is None:
        print("no session", flush=True)
        return 2
    await client.open()
    client.start()
    await client.wait_synced(60)
    if mode == "send":
        room_id, bodies = args[0], args[1:]
        for body in bodies:
            entry = await client.send_message(room_id, body)
            print(f"queued {entry.txn_id} {body}", flush=True)
        await asyncio.Event().wait()  # until killed
    while await client.db.run(client.cache.outbox, None, ("pending",)):
        await asyncio.sleep(0.05)
    print("drained", flush=True)
    await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
