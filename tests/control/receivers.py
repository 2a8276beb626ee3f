"""Real receivers for alert notifications: an HTTP server (webhooks, Slack payloads) that
can answer an error or hang, and an SMTP server (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A local HTTP server recording every POST. ``status`` is what it answers (200 by
    default); ``hang=True`` makes it hold each request without answering until closed;
    ``drip`` ("headers" or "body") makes it send that part a byte every 0.1 s until closed."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.status = 200
        self.hang = False
        self.drip: str | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.requests.append(request)
                if receiver.hang:
                    receiver._release.wait(30)
                    return
                if receiver.drip is not None:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    if receiver.drip == "body":
                        self.wfile.write(b"1\r\nContent-Length: 100000\r\n\r\n")
                    while not receiver._release.wait(0.1):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    return
                data = b"ok"
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.json for r in self.requests]

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 and a free port, keeping every message. ``logins`` (user ->
    password) turns on AUTH; ``tls`` (an SSLContext) offers STARTTLS and requires it."""

    logins: dict[str, str] | None = None
    tls: Any = None
    messages: list[Mail] = field(default_factory=list)
    reply: str = "250 Message accepted for delivery"

    def __post_init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content, policy=policy.default)
                receiver.messages.append(
                    Mail(envelope.mail_from, list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
                )
                return receiver.reply

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            if isinstance(data, LoginPassword) and receiver.logins is not None:
                user, password = data.login.decode(), data.password.decode()
                ok = receiver.logins.get(user) == password
                return AuthResult(success=ok, handled=False)
            return AuthResult(success=False, handled=False)

        kwargs: dict[str, Any] = {}
        if self.logins is not None:
            kwargs.update(authenticator=authenticator, auth_require_tls=self.tls is not None)
        if self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait(self, count: int, timeout: float = 5.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages


class DrippingSmtp:
    """A server that greets each connection as SMTP does, a byte every 0.1 s, forever (until
    the client goes or the server closes): each read gets a byte well within its timeout."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.connections = 0
        self._closed = threading.Event()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            for byte in iter(lambda: b"2", None):
                if self._closed.wait(0.1):
                    return
                try:
                    client.sendall(byte)
                except OSError:  # the client went away
                    return

    def __enter__(self) -> DrippingSmtp:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._server.close()
