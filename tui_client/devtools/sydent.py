"""A real identity server (matrix-sydent) and a mail catcher on loopback, for tests.

Sydent pins ``signedjson==1.1.1`` and Synapse needs ``>=1.1.4``, so Sydent cannot live
in the project's venv: :func:`ensure_venv` makes its own (``.venv-sydent`` beside the
project, or ``TUI_CLIENT_SYDENT_VENV``) from ``requirements-sydent.lock`` on first use.

Synapse reaches identity servers over ``https://`` only, so Sydent's client API is served
over TLS with a certificate for ``127.0.0.1`` from a test CA written next to it
(:attr:`SydentServer.ca_file`; Synapse is told to skip verification with
``use_insecure_ssl_client_just_for_testing_do_not_use``, our client trusts the CA).
Sydent reaches the homeserver over its federation API in plain HTTP
(``use_tls_for_federation=False``, the switch Sydent's own tests use), so the
homeserver's server name must be ``127.0.0.1:<port>`` with ``openid`` and
``federation`` resources on its listener: :func:`synapse_config` gives both.

:class:`MailCatcher` is a small SMTP server (stdlib only) keeping every mail it is sent,
for the validation and invitation mails of Sydent and Synapse.

Only the standard library is used here; the code that runs inside Sydent's venv is the
``_LAUNCHER`` text.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .children import die_with_parent

__all__ = ["MailCatcher", "SydentServer", "ensure_venv", "synapse_config"]

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ROOT / "requirements-sydent.lock"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_path() -> Path:
    """Where Sydent's venv is (made by :func:`ensure_venv`)."""
    return Path(os.environ.get("TUI_CLIENT_SYDENT_VENV") or ROOT / ".venv-sydent")


def ensure_venv(path: Path | None = None) -> Path:
    """Make Sydent's venv from the lock file if it is not there yet; return its python."""
    path = path or venv_path()
    python = path / "bin" / "python"
    stamp = path / ".installed"
    lock = LOCK_FILE.read_bytes()
    if stamp.exists() and stamp.read_bytes() == lock and python.exists():
        return python
    # One maker at a time (parallel test runs on one machine share the venv).
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as guard:
        import fcntl

        fcntl.flock(guard, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_bytes() == lock and python.exists():
            return python
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(LOCK_FILE),
            ],
            check=True,
        )
        stamp.write_bytes(lock)
    return python


def synapse_config(port: int, sydent: SydentServer, mail: MailCatcher) -> dict[str, Any]:
    """Synapse settings (``extra_config``) for a homeserver on ``port`` that uses ``sydent``.

    Its server name must be ``127.0.0.1:<port>`` (see the module's text).
    """
    return {
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [
                    {"names": ["client", "openid", "federation", "keys"], "compress": False}
                ],
            }
        ],
        "use_insecure_ssl_client_just_for_testing_do_not_use": True,
        "serve_client_wellknown": True,
        "default_identity_server": sydent.base_url,
        "ip_range_whitelist": ["127.0.0.1/32"],
        "federation_ip_range_whitelist": ["127.0.0.1/32"],
        "federation_domain_whitelist": None,
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": mail.port,
            "notif_from": "Test homeserver <hs@example.test>",
            "enable_tls": False,
            "require_transport_security": False,
            "force_tls": False,
        },
    }


# -- mail ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail the catcher was sent."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str

    def links(self) -> list[str]:
        """The http(s) links in the mail's text."""
        return re.findall(r"https?://[^\s\"'<>]+", self.body)


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self._say("220 mail catcher ready")
        sender, recipients = "", list[str]()
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self._say("250-mail catcher")
                self._say("250 8BITMIME")
            elif verb == "HELO":
                self._say("250 mail catcher")
            elif verb == "MAIL":
                sender, recipients = line.partition(":")[2].strip().strip("<>"), []
                self._say("250 OK")
            elif verb == "RCPT":
                recipients.append(line.partition(":")[2].strip().strip("<>"))
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while True:
                    chunk = self.rfile.readline()
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.catcher.add(sender, recipients, bytes(data))
                self._say("250 OK queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:  # RSET, NOOP, anything else
                self._say("250 OK")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    catcher: MailCatcher


class MailCatcher:
    """An SMTP server on 127.0.0.1 that keeps what it is sent (no TLS, no auth)."""

    def __init__(self) -> None:
        self._server = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
        self._server.catcher = self
        self.port: int = self._server.server_address[1]
        self.mails: list[Mail] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="mail-catcher"
        )
        self._thread.start()

    def add(self, sender: str, recipients: list[str], data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        parts = (
            [message]
            if not message.is_multipart()
            else [p for p in message.walk() if not p.is_multipart()]
        )
        texts: list[str] = []
        for part in parts:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
        with self._changed:
            self.mails.append(
                Mail(sender, tuple(recipients), str(message.get("Subject", "")), "\n".join(texts))
            )
            self._changed.notify_all()

    def wait_for(self, recipient: str, *, after: int = 0, timeout: float = 30.0) -> Mail:
        """The first mail to ``recipient`` among those from index ``after`` on."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for mail in self.mails[after:]:
                    if recipient in mail.recipients:
                        return mail
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no mail to {recipient} in {timeout} s (got {len(self.mails)})"
                    )
                self._changed.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- sydent ----------------------------------------------------------------------------

_LAUNCHER = r"""
import datetime, ipaddress, os, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

base = Path(sys.argv[1]); port = int(sys.argv[2])
key_file, cert_file, ca_file = base / "tls.key", base / "tls.crt", base / "ca.pem"
if not cert_file.exists():
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tui_client test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

from twisted.internet import reactor, ssl
from sydent.config import SydentConfig
from sydent.sydent import Sydent, setup_logging

config = SydentConfig()
config.parse_config_file(str(base / "sydent.conf"))
setup_logging(config)
syd = Sydent(config, use_tls_for_federation=False)
options = ssl.DefaultOpenSSLContextFactory(str(key_file), str(cert_file))

def listen():
    reactor.listenSSL(port, syd.clientApiHttpServer.factory, options, interface="127.0.0.1")

syd.clientApiHttpServer.setup = listen
syd.run()
"""

_VALIDATION_MAIL = """\
From: %(from)s
To: %(to)s
Subject: Confirm your email address
Message-ID: %(messageid)s
Date: %(date)s
Content-Type: text/plain; charset=UTF-8

Confirm this address for Matrix: %(link)s
(token %(token)s)
"""

_INVITE_MAIL = """\
From: %(from)s
To: %(to)s
Subject: %(sender_display_name)s invited you to %(room_name)s
Message-ID: %(messageid)s
Date: %(date)s
Content-Type: text/plain; charset=UTF-8

%(sender_display_name)s (%(sender)s) invited you to a Matrix room, %(room_name)s (%(room_id)s).
Sign in and add this address to your account to accept: %(web_client_location)s
"""

_RESPONSE_PAGE = "<html><body><p>%(message)s</p></body></html>\n"

_TERMS = """\
master_version: "1"
docs:
  privacy:
    version: "1.0"
    langs:
      en:
        name: "Privacy policy"
        url: "https://identity.test/privacy-1.0.html"
"""


class SydentServer:
    """matrix-sydent as a child process, its state in ``base_dir``, TLS on 127.0.0.1."""

    def __init__(self, base_dir: Path, mail: MailCatcher, *, terms: bool = True) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.mail = mail
        self.terms = terms
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def server_name(self) -> str:
        """How homeservers and clients name it (``id_server``): ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.server_name}"

    @property
    def ca_file(self) -> Path:
        """The test CA that signed its certificate (written at the first start)."""
        return self.base_dir / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "sydent.log"

    def _write_config(self) -> None:
        base = self.base_dir
        base.mkdir(parents=True, exist_ok=True)
        (base / "validation.eml").write_text(_VALIDATION_MAIL)
        (base / "invite.eml").write_text(_INVITE_MAIL)
        (base / "response.html").write_text(_RESPONSE_PAGE)
        (base / "terms.yaml").write_text(_TERMS)
        lines = [
            "[general]",
            f"server.name = {self.server_name}",
            f"log.path = {self.log_path}",
            "log.level = INFO",
            f"pidfile.path = {base / 'sydent.pid'}",
            f"terms.path = {base / 'terms.yaml' if self.terms else ''}",
            f"templates.path = {base / 'no-templates'}",
            "ip.whitelist = 127.0.0.1/32",
            "[db]",
            f"db.file = {base / 'sydent.db'}",
            "[http]",
            "clientapi.http.bind_address = 127.0.0.1",
            f"clientapi.http.port = {self.port}",
            f"replication.https.port = {_free_port()}",
            "replication.https.bind_address = 127.0.0.1",
            f"client_http_base = {self.base_url}",
            f"verify_response_template = {base / 'response.html'}",
            "federation.verifycerts = false",
            "[email]",
            f"email.template = {base / 'validation.eml'}",
            f"email.invite_template = {base / 'invite.eml'}",
            "email.from = Identity server <ids@example.test>",
            "email.smtphost = 127.0.0.1",
            f"email.smtpport = {self.mail.port}",
            "email.tlsmode = 0",
            "email.hostname = identity.test",
            "[crypto]",
        ]
        (base / "sydent.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 60.0) -> None:
        python = ensure_venv()
        self._write_config()
        with open(self.base_dir / "console.log", "ab") as console:
            self._process = subprocess.Popen(
                [str(python), "-c", _LAUNCHER, str(self.base_dir), str(self.port)],
                cwd=self.base_dir,
                stdout=console,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sydent exited ({self._process.returncode}):\n{self._tail()}")
            if self.ca_file.exists() and self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sydent did not start in {timeout} s:\n{self._tail()}")

    def _answers(self) -> bool:
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(
                f"{self.base_url}/_matrix/identity/v2", context=context, timeout=2
            ):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def _tail(self) -> str:
        out = []
        for name in ("console.log", "sydent.log"):
            path = self.base_dir / name
            if path.exists():
                out.append(
                    f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
                )
        return "\n".join(out)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
