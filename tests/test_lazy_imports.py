"""Start-up imports: what the first painted room list does not need is imported when first used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAZY = ("markdown_it", "emoji")


def test_importing_the_app_leaves_formatting_and_emoji_for_later() -> None:
    code = (
        f"import sys, tui_client.ui.app\nprint(' '.join(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_they_load_when_first_used() -> None:
    code = (
        "import sys\n"
        "from tui_client.engine.formatting import markdown_to_html\n"
        "from tui_client.ui.completion import complete_emoji\n"
        "assert markdown_to_html('**hi**') == '<strong>hi</strong>'\n"
        "assert complete_emoji(':thumbs_u')\n"
        f"print(' '.join(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == list(LAZY)


MACHINE = (
    "tui_client.crypto.machine",
    "tui_client.crypto.machine_core",
    "tui_client.crypto.olm_sessions",
    "tui_client.crypto.megolm_inbound",
    "tui_client.crypto.megolm_outbound",
    "tui_client.crypto.gossip",
)


def test_importing_the_app_leaves_the_crypto_machine_for_later() -> None:
    code = f"import sys, tui_client.ui.app\nprint(' '.join(m for m in {MACHINE!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_the_machine_loads_when_first_named() -> None:
    code = (
        "import sys\n"
        "from tui_client.crypto import OlmMachine, EncryptionError\n"
        "from tui_client.crypto.machine import EncryptionError as FromMachine\n"
        "assert OlmMachine.__module__ == 'tui_client.crypto.machine'\n"
        "assert EncryptionError is FromMachine\n"
        f"print(' '.join(m for m in {MACHINE!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == list(MACHINE)


# Issue 13: made when first used (engine/services.py), drawn when first shown (the OAuth QR code).
SERVICES = (
    "tui_client.engine.verification",
    "tui_client.engine.cross_signing",
    "segno",
)


def test_importing_the_app_leaves_verification_cross_signing_and_qr_codes_for_later() -> None:
    code = f"import sys, tui_client.ui.app\nprint(' '.join(m for m in {SERVICES!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_the_qr_encoder_loads_when_a_code_is_drawn() -> None:
    code = (
        "import sys\n"
        "from tui_client.ui.widgets.qr_code import qr_matrix\n"
        "assert 'segno' not in sys.modules\n"
        "assert len(qr_matrix('https://example.org')) > 20\n"
        "print('segno' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True"]


# Issue 13 (start-up): what the first painted room list does not need is imported when first
# used: key backup and recovery (and `cryptography` under them), the crypto package's types,
# cross-signing and verification flows, pictures (Pillow, blurhash),
# HTTP (httpx, httpcore, anyio: the room list is painted from the cache before the first
# request), the sync sources and the ingest of a batch (chosen and run after the first
# paint), code highlighting (Pygments), search, the room directory, the login, verification
# and device screens.
NOT_FOR_THE_FIRST_PAINT = (
    "cryptography",
    "tui_client.crypto.types",
    "tui_client.crypto.verification",
    "tui_client.crypto.cross_signing",
    "PIL",
    "httpx",
    "httpcore",
    "anyio",
    "pygments",
    "blurhash",
    "tui_client.crypto.backup",
    "tui_client.crypto.secret_storage",
    "tui_client.engine.backup",
    "tui_client.engine.sliding_sync",
    "tui_client.engine.sync_ingest",
    "tui_client.engine.search",
    "tui_client.ui.screens.search",
    "tui_client.engine.recovery",
    "tui_client.engine.directory",
    "tui_client.ui.screens.directory",
    "tui_client.ui.screens.login",
    "tui_client.ui.screens.devices",
    "tui_client.ui.screens.verification",
    "tui_client.ui.screens.recovery",
    "tui_client.ui.screens.security",
    # The timeline's HTML stack: parsed and drawn once a room opens, after the first paint.
    "tui_client.protocol.html",
    "tui_client.protocol.html_tree",
    "tui_client.protocol.links",
    "tui_client.protocol.web_links",
    "tui_client.ui.formatted",
)


def test_importing_the_app_leaves_backup_media_directory_and_screens_for_later() -> None:
    code = (
        "import sys, tui_client.ui.app\n"
        f"print(' '.join(m for m in {NOT_FOR_THE_FIRST_PAINT!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_pillow_loads_when_the_first_picture_is_decoded() -> None:
    code = (
        "import io, sys\n"
        "from tui_client.engine.images import blurhash_picture, decode_picture\n"
        "from tui_client.engine.image_decode import MAX_IMAGE_PIXELS\n"
        "assert 'PIL' not in sys.modules\n"
        "from PIL import Image\n"
        "out = io.BytesIO(); Image.new('RGB', (8, 4), (200, 10, 10)).save(out, 'PNG')\n"
        "picture = decode_picture(out.getvalue(), 4, 2)\n"
        "assert (picture.width, picture.height) == (4, 2), picture\n"
        "assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS\n"
        "assert blurhash_picture('LEHV6nWB2yk8pyo0adR*.7kCMdnj', 4, 2) is not None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["ok"]


def test_every_name_of_the_crypto_package_is_there_when_named() -> None:
    code = (
        "import importlib, sys, tui_client.crypto as crypto\n"
        "assert 'tui_client.crypto.types' not in sys.modules\n"
        "for name in crypto.__all__:\n"
        "    value = getattr(crypto, name)\n"
        "    if isinstance(value, type):\n"
        "        home = importlib.import_module(value.__module__)\n"
        "        assert getattr(home, name) is value, name\n"
        "from tui_client.crypto import DecryptedEvent, EncryptionError\n"
        "from tui_client.crypto.types import DecryptedEvent as Direct\n"
        "assert DecryptedEvent is Direct\n"
        "print(len(crypto.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) >= 17


HTML_STACK = ("tui_client.protocol.html", "tui_client.protocol.html_tree")


def test_the_html_parser_loads_with_the_first_formatted_body() -> None:
    code = (
        "import sys\n"
        "from tui_client.protocol.render import formatted_document\n"
        f"assert not [m for m in {HTML_STACK!r} if m in sys.modules]\n"
        "assert formatted_document({'body': 'hi'}) is None\n"
        f"assert not [m for m in {HTML_STACK!r} if m in sys.modules]\n"
        "doc = formatted_document({'format': 'org.matrix.custom.html', 'formatted_body': '<b>hi</b>'})\n"
        "assert doc is not None\n"
        f"print(' '.join(m for m in {HTML_STACK!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == list(HTML_STACK)


# Issue 13, round six: the first painted screen needs none of these. Reading an HTML body we
# sent (`html.parser`, `html`), an HTTP-date Retry-After (`email`), the server clock's
# median (`statistics`), and the help, room switcher, thread and dialog screens (opened by a key).
ROUND_SIX = (
    "html",
    "html.parser",
    "email.utils",
    "statistics",
    "tui_client.engine.html_text",
    "tui_client.ui.screens.help",
    "tui_client.ui.screens.switcher",
    "tui_client.ui.screens.threads",
    "tui_client.ui.screens.dialogs",
)


def test_importing_the_app_leaves_html_email_statistics_and_the_key_screens_for_later() -> None:
    code = f"import sys, tui_client.ui.app\nprint(' '.join(m for m in {ROUND_SIX!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_html_email_and_statistics_load_when_first_used() -> None:
    code = (
        "import sys\n"
        "import tui_client.ui.app\n"
        "from tui_client.engine.formatting import html_to_plain, mentioned_user_ids, pills_of\n"
        "from tui_client.engine.server_clock import ServerClock\n"
        "from tui_client.protocol.errors import parse_retry_after\n"
        "def loaded(*names): return [m for m in names if m in sys.modules]\n"
        "assert parse_retry_after('120') == 120.0 and not loaded('email.utils')\n"
        "assert parse_retry_after('Wed, 21 Oct 2015 07:28:00 GMT', now=1445412470.0) == 10.0\n"
        "body = '<p>hi <a href=\"https://matrix.to/#/%40bob%3Ahs\">Bob</a></p><br>x'\n"
        "assert html_to_plain(body) == 'hi Bob\\n\\nx', html_to_plain(body)\n"
        "assert mentioned_user_ids(body) == ['@bob:hs']\n"
        "assert [(p.text, p.target) for p in pills_of(body)] == [('Bob', '@bob:hs')]\n"
        "clock = ServerClock(lambda: 1000.0)\n"
        "assert not loaded('statistics')\n"
        "clock.observe([{'origin_server_ts': 999_000, 'unsigned': {'age': 500}}], received_ms=1_000_000)\n"
        "assert clock.offset_ms == -500, clock.offset_ms\n"
        "print(' '.join(loaded('html', 'html.parser', 'email.utils', 'statistics', 'tui_client.engine.html_text')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "html",
        "html.parser",
        "email.utils",
        "statistics",
        "tui_client.engine.html_text",
    ]


_SCREENS_BY_KEY = """
import asyncio, sys, tempfile
from pathlib import Path

from tests.ui.fake_world import FakeHomeserver, make_profile, use_memory_keyring
from tui_client.ui.app import TuiClientApp
from tui_client.ui.widgets.room_list import RoomList

SCREENS = ("help", "switcher", "threads", "dialogs")


def loaded() -> list[str]:
    return [s for s in SCREENS if "tui_client.ui.screens." + s in sys.modules]


async def wait_for(pilot, ready, what: str) -> None:  # (tests.ui's imports every screen)
    for _ in range(600):
        if ready():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for " + what)


at_paint: list[list[str]] = []
display = TuiClientApp._display


def marked(app, screen, renderable) -> None:  # (as bench.start_process marks the first paint)
    display(app, screen, renderable)
    chat = app.chat_screen
    if not at_paint and chat is not None and app.screen is chat:
        if chat.query_one(RoomList).option_count:
            at_paint.append(loaded())


TuiClientApp._display = marked


async def main() -> None:
    use_memory_keyring()
    base = Path(tempfile.mkdtemp())
    make_profile(base)
    server = FakeHomeserver()
    app = TuiClientApp(base_dir=base, transport=server.transport())
    async with app.run_test(size=(80, 24)) as pilot:
        chat = lambda: app.chat_screen
        await wait_for(pilot, lambda: chat() is not None and chat().view is not None, "a room")
        print("painted:", *at_paint[0])
        keys = (
            ("f1", "HelpScreen"),
            ("ctrl+k", "RoomSwitcher"),
            ("ctrl+t", "ThreadListScreen"),
            ("ctrl+o", "PromptDialog"),
        )
        for key, name in keys:
            await pilot.press(key)
            await wait_for(pilot, lambda: type(app.screen).__name__ == name, name)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is app.chat_screen, "the chat screen")
        print("opened:", *loaded())


asyncio.run(main())
"""


def test_the_help_switcher_thread_and_dialog_screens_load_when_their_key_is_pressed() -> None:
    """At 80x24, at the first paint of the room list: none of these screens' modules is
    loaded (the dialogs are, later: the account's opening loads them on a thread); then
    F1, Ctrl+K, Ctrl+T and Ctrl+O (join: a prompt) each open theirs."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _SCREENS_BY_KEY],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-2:] == ["painted:", "opened: help switcher threads dialogs"]
