"""The config file's account settings, applied to a session's services.

The config file (``tui_client/config.py``) is the source of truth for the settings it
names: :func:`apply_config` sets each named one on the services (which also keep it in
the cache, as the palette toggles do). :func:`account_values` reads what the services
hold now, so the UI can write a setting changed in the client back to the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Config

if TYPE_CHECKING:
    from .client import MatrixClient

__all__ = ["ACCOUNT_SETTINGS", "account_values", "apply_config"]

#: The ``Config`` fields kept by a session's services.
ACCOUNT_SETTINGS = (
    "typing_notices",
    "private_read_receipts",
    "presence",
    "share_keys_only_with_verified",
    "notification_alerts",
    "notification_text",
    "sync_source",
    "identity_server",
)


def account_values(client: MatrixClient) -> dict[str, Any]:
    """The account settings as the session's services hold them now."""
    alerts = client.notifications.alerts
    return {
        "typing_notices": client.typing.enabled,
        "private_read_receipts": client.receipts.private,
        "presence": client.presence.enabled,
        "share_keys_only_with_verified": client.devices.only_verified,
        "notification_alerts": alerts.mode,
        "notification_text": alerts.text,
        "sync_source": "sliding" if client.sliding_sync_allowed else "v2",
        "identity_server": client.identity.configured or "",
    }


async def apply_config(client: MatrixClient, config: Config) -> list[str]:
    """Set every account setting ``config`` names that differs; returns the fields changed.

    Call after :meth:`MatrixClient.open` (the services have read the cache by then).
    """
    now = account_values(client)
    changed = [f for f in ACCOUNT_SETTINGS if config.names(f) and getattr(config, f) != now[f]]
    for name in changed:
        value = getattr(config, name)
        if name == "typing_notices":
            await client.typing.set_enabled(value)
        elif name == "private_read_receipts":
            await client.receipts.set_private(value)
        elif name == "presence":
            await client.presence.set_enabled(value)
        elif name == "share_keys_only_with_verified":
            await client.devices.set_only_verified(value)
        elif name == "notification_alerts":
            await client.notifications.alerts.set_mode(value)
        elif name == "notification_text":
            await client.notifications.alerts.set_text(value)
        elif name == "sync_source":
            await client.set_sliding_sync(value == "sliding")
        elif name == "identity_server":
            client.identity.configured = value.rstrip("/") or None
    return changed
