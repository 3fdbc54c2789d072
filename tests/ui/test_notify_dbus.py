"""The D-Bus notification on a real (throwaway) session bus: a stand-in notification server
receives org.freedesktop.Notifications.Notify with a clean title and an XML-escaped body;
a refusal is an error (the notifier then falls back to the terminal)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

SERVER = textwrap.dedent(
    """
    import json, sys, threading
    from jeepney import MessageType, new_error, new_method_return
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection
    from tui_client.ui.notify import send_dbus_notification

    refuse = sys.argv[1] == "refuse"
    got = []
    ready = threading.Event()

    def server():
        with open_dbus_connection(bus="SESSION") as conn:
            conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications"))
            ready.set()
            while True:
                msg = conn.receive()
                if msg.header.message_type == MessageType.method_call:
                    got.append([msg.header.fields.get(3), list(msg.body[:5]), msg.body[6]])
                    if refuse:
                        conn.send(new_error(msg, "org.freedesktop.DBus.Error.Failed"))
                    else:
                        conn.send(new_method_return(msg, "u", (7,)))
                    return

    threading.Thread(target=server, daemon=True).start()
    ready.wait(10)
    try:
        send_dbus_notification(
            "Lobby\\x1b]0;pwned\\x07", "Bob: <b>hi</b> & \\x1b[31mred", urgent=True, sound=True
        )
        outcome = "sent"
    except OSError as error:
        outcome = "refused"
    print(json.dumps({"outcome": outcome, "got": got}))
    """
)


def run(mode: str) -> dict[str, object]:
    assert shutil.which("dbus-run-session"), "dbus-run-session is needed"
    done = subprocess.run(
        ["dbus-run-session", "--", sys.executable, "-c", SERVER, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_notify_reaches_the_session_bus_cleaned_and_escaped() -> None:
    result = run("accept")
    assert result["outcome"] == "sent"
    assert result["got"] == [
        [
            "Notify",
            ["tui_client", 0, "", "Lobby", "Bob: &lt;b&gt;hi&lt;/b&gt; &amp; red"],
            {
                "urgency": ["y", 2],
                "category": ["s", "im.received"],
                "sound-name": ["s", "message-new-instant"],
            },
        ]
    ]


def test_a_refusal_is_an_error() -> None:
    result = run("refuse")
    assert result["outcome"] == "refused"
