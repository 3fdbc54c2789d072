"""A Synapse, a real identity server (matrix-sydent in its own venv) and a mail catcher,
all on loopback, for the identity-server tests (see tui_client/devtools/sydent.py)."""

from __future__ import annotations

import re
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tui_client.devtools.sydent import Mail, MailCatcher, SydentServer, synapse_config
from tui_client.devtools.synapse import SynapseServer, _free_port
from tui_client.net.http import trust_context


@dataclass
class IdentityWorld:
    synapse: SynapseServer
    sydent: SydentServer
    mail: MailCatcher

    def click(self, mail: Mail) -> str:
        """Follow the validation link in ``mail`` as the user's browser would."""
        (link,) = [u for u in mail.links() if "submitToken" in u]
        context = ssl.create_default_context(cafile=str(self.sydent.ca_file))
        with urllib.request.urlopen(
            link.replace("&amp;", "&"), context=context, timeout=10
        ) as answer:
            return str(answer.read().decode())


@pytest.fixture(scope="module")
def identity_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityWorld]:
    base = tmp_path_factory.mktemp("identity")
    mail = MailCatcher()
    sydent = SydentServer(base / "sydent", mail)
    sydent.start()
    # The client trusts the test CA that signed Sydent's certificate (loopback only), in
    # the contexts of this thread's connections, those offering HTTP/2 and those not.
    for http2 in (False, True):
        trust_context(http2).load_verify_locations(cafile=str(sydent.ca_file))
    port = _free_port()
    synapse = SynapseServer(
        base / "synapse",
        port=port,
        server_name=f"127.0.0.1:{port}",
        extra_config=synapse_config(port, sydent, mail),
    )
    try:
        synapse.start()
        yield IdentityWorld(synapse, sydent, mail)
    finally:
        synapse.stop()
        sydent.stop()
        mail.close()


def token_of(mail: Mail) -> str:
    found = re.search(r"token=([^&\s]+)", mail.body)
    assert found, mail.body
    return found.group(1)
