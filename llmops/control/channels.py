"""Where alert notifications go: a JSON webhook, a Slack-compatible incoming webhook, e-mail
over SMTP, and the ``llmops.alerts`` logger.

Webhook URLs (a Slack URL holds a token), extra headers and SMTP passwords are read from the
environment variables the config names, when the channels are built: never from the file,
never stored, never logged. A delivery error names the channel and what went wrong (an HTTP
status, "timed out", "connection refused"), never the URL. Every network call has a timeout,
and :func:`deliver` gives all channels of one notification a common deadline, so a receiver
that hangs cannot hang a check.

The webhook body (``Content-Type: application/json``), one object::

    {"version": 1, "source": "llmops", "event": "fired", "rule": "errors",
     "kind": "error_rate", "subject": "gpt-4o", "key": "errors|gpt-4o",
     "value": 0.12, "threshold": 0.05, "window": "15m",
     "message": "gpt-4o: 12.0% of 150 calls failed in the last 15m (alert above 5.0%)",
     "at": "2026-12-02T15:30:00+00:00", "dashboard": "https://..." or null}

``event`` is ``fired`` or ``resolved``; ``value`` and ``threshold`` are in the rule's unit
(a share for error rates and pass rates, milliseconds, USD, percent of a budget).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import json
import logging
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from llmops.config import (
    AlertChannel,
    Alerts,
    EmailChannel,
    LogChannel,
    SlackChannel,
)
from llmops.errors import ConfigError
from llmops.jsondata import finite

__all__ = [
    "DASHBOARD_URL_ENV",
    "Channel",
    "DeliveryError",
    "Notification",
    "build_channels",
    "dashboard_url",
    "deliver",
    "email_message",
    "slack_payload",
]

logger = logging.getLogger("llmops.alerts")

DASHBOARD_URL_ENV = "LLMOPS_DASHBOARD_URL"
MAX_REASON = 300  # characters of a delivery error
REDACTED = "[REDACTED]"
USER_AGENT = "llmops-alerts"


@dataclass(frozen=True)
class Notification:
    """One alert changing state, as every channel tells it."""

    event: str  # fired or resolved
    rule: str
    kind: str
    subject: str
    key: str
    value: float | None
    threshold: float | None
    window: str
    message: str
    at: datetime
    dashboard: str | None = None

    @property
    def title(self) -> str:
        """``FIRING: errors / gpt-4o`` (one line: control characters become spaces)."""
        state = "FIRING" if self.event == "fired" else "RESOLVED"
        return _one_line(f"{state}: {self.rule} / {self.subject}")

    def to_json(self) -> dict[str, Any]:
        """The webhook body (see the module's docstring)."""
        body: dict[str, Any] = finite({  # JSON has no NaN or Infinity (SQL may write one)
            "version": 1,
            "source": "llmops",
            "event": self.event,
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "key": self.key,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "message": self.message,
            "at": self.at.astimezone(UTC).isoformat(),
            "dashboard": self.dashboard,
        })  # fmt: skip
        return body


def slack_payload(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notifications, clients without blocks) and
    ``blocks`` (a section with the title and message, a context line with rule, kind and
    window, and the dashboard link when there is one)."""
    n = notification
    icon = ":rotating_light:" if n.event == "fired" else ":white_check_mark:"
    context = f"rule `{_slack(n.rule)}` ({n.kind}) · window {_slack(n.window)}"
    if n.dashboard:
        context += f" · <{_slack(n.dashboard)}|Open the dashboard>"
    return {
        "text": _slack(f"{n.title}: {n.message}"),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{icon} *{_slack(n.title)}*\n{_slack(n.message)}",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def _slack(text: str) -> str:
    """Text safe in Slack mrkdwn: ``&``, ``<`` and ``>`` escaped (a subject such as
    ``<!channel>`` must not ping anyone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(notification: Notification, sender: str, to: Sequence[str]) -> EmailMessage:
    """A plain-text e-mail: subject ``[llmops] FIRING: rule / subject``, the message, then
    the figures."""
    n = notification
    message = EmailMessage()
    message["Subject"] = f"[llmops] {n.title}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.format_datetime(n.at.astimezone(UTC))
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = [
        n.message,
        "",
        f"Rule:      {n.rule} ({n.kind})",
        f"Subject:   {n.subject}",
        f"Event:     {n.event}",
        f"Value:     {_number(n.value)}",
        f"Threshold: {_number(n.threshold)}",
        f"Window:    {n.window}",
        f"At:        {n.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
    ]
    if n.dashboard:
        lines.append(f"Dashboard: {n.dashboard}")
    lines += ["", "-- ", "llmops alerts"]
    message.set_content("\n".join(lines) + "\n")
    return message


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


# -- channels ---------------------------------------------------------------------------


class DeliveryError(Exception):
    """A notification did not reach a channel; the message is safe to store and log."""


class Channel(ABC):
    """One destination of notifications, with its credentials resolved."""

    def __init__(self, name: str, secrets: Sequence[str] = ()) -> None:
        self.name = name
        self._secrets = tuple(s for s in secrets if s)
        self._sending = threading.Lock()  # one delivery at a time (see deliver)

    @abstractmethod
    def send(self, notification: Notification, timeout: float) -> None:
        """Deliver, or raise :class:`DeliveryError`; no network call waits longer than
        ``timeout`` seconds."""

    def scrub(self, text: str) -> str:
        """``text`` without this channel's URL, headers or password, and on one line."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _one_line(text)
        return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "\u2026"

    def __repr__(self) -> str:  # never shows the URL
        return f"{type(self).__name__}({self.name!r})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is reported as a failure: the body is not re-sent to another place."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """Ends a webhook request or an SMTP exchange at its deadline, whatever it is waiting
    for: each of urllib's and smtplib's reads waits ``timeout`` at most, so a receiver that
    sends its answer a byte at a time would hold the request (and its thread) for as long
    as it sends. The connections made on this thread register their sockets here;
    :meth:`end` shuts the last one down."""

    _current = threading.local()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.ended = False

    def __enter__(self) -> _Deadline:
        _Deadline._current.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Deadline._current.deadline = None

    @classmethod
    def watch(cls, sock: socket.socket) -> None:
        deadline = getattr(cls._current, "deadline", None)
        if deadline is not None:
            with deadline._lock:
                deadline._socket = sock
                if deadline.ended:
                    _shut(sock)

    def end(self) -> None:
        with self._lock:
            self.ended = True
            if self._socket is not None:
                _shut(self._socket)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


class _Watched(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _Deadline.watch(self.sock)


class _WatchedTLS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _Deadline.watch(self.sock)


class _HTTP(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_Watched, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedTLS, req)


class _WatchedSocket:
    """An SMTP connection whose socket a :class:`_Deadline` watches."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        _Deadline.watch(sock)
        return sock


class _WatchedSMTP(_WatchedSocket, smtplib.SMTP):
    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        answer = super().starttls(*args, **kwargs)
        if self.sock is not None:  # the TLS socket took over the plain one's descriptor
            _Deadline.watch(self.sock)
        return answer


class _WatchedSMTPS(_WatchedSocket, smtplib.SMTP_SSL):
    pass


# proxies (HTTP(S)_PROXY) as urllib finds them; the connections watched by a deadline
_OPENER = urllib.request.build_opener(_NoRedirect(), _HTTP(), _HTTPS())


class Webhook(Channel):
    """POST the JSON body of :meth:`Notification.to_json`."""

    def __init__(self, name: str, url: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(name, [url, *(headers or {}).values()])
        self._url = url
        self._headers = dict(headers or {})

    def body(self, notification: Notification) -> dict[str, Any]:
        return notification.to_json()

    def send(self, notification: Notification, timeout: float) -> None:
        data = json.dumps(self.body(notification), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        request = urllib.request.Request(  # noqa: S310 (http and https only, checked when built)
            self._url, data=data, headers={**headers, **self._headers}, method="POST"
        )
        deadline = _Deadline()
        timer = threading.Timer(timeout, deadline.end)
        timer.daemon = True
        try:  # the status is the answer: a body sent a byte at a time is not waited for
            with deadline:
                timer.start()
                with _OPENER.open(request, timeout=timeout):
                    pass
            if deadline.ended:  # http.client takes an end of the headers for their end
                raise TimeoutError
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"HTTP {exc.code}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # timeouts, resets, a malformed answer (URLError is an OSError)
            if deadline.ended:
                raise DeliveryError("timed out") from None
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(_reason(reason)) from None
        finally:
            timer.cancel()


class Slack(Webhook):
    """POST :func:`slack_payload` to a Slack-compatible incoming webhook."""

    def body(self, notification: Notification) -> dict[str, Any]:
        return slack_payload(notification)


class Email(Channel):
    """Send :func:`email_message` through SMTP (optionally SSL or STARTTLS, and a login)."""

    def __init__(self, config: EmailChannel, username: str | None, password: str | None) -> None:
        secrets = [password or ""]
        if password:  # as SMTP AUTH PLAIN and LOGIN send it, which a server may echo back
            plain = f"\0{username or ''}\0{password}".encode()
            secrets += [
                base64.b64encode(plain).decode(),
                base64.b64encode(password.encode()).decode(),
            ]
        super().__init__(config.name, secrets)
        self.config = config
        self._username = username
        self._password = password

    def send(self, notification: Notification, timeout: float) -> None:
        """The whole exchange ends at ``timeout`` (a :class:`_Deadline`, as a webhook's):
        each of smtplib's reads waits ``timeout`` at most, so a server that answered a byte
        at a time held the delivery, and every later alert of this channel failed as still
        waiting, for as long as it went on."""
        deadline = _Deadline()
        timer = threading.Timer(timeout, deadline.end)
        timer.daemon = True
        try:
            with deadline:
                timer.start()
                self._exchange(notification, timeout)
        except DeliveryError:
            if deadline.ended:
                raise DeliveryError("SMTP: timed out") from None
            raise
        finally:
            timer.cancel()

    def _exchange(self, notification: Notification, timeout: float) -> None:
        c = self.config
        message = email_message(notification, c.sender, c.to)
        try:
            smtp: smtplib.SMTP
            if c.ssl:
                context = ssl.create_default_context()
                smtp = _WatchedSMTPS(c.smtp_host, c.smtp_port, timeout=timeout, context=context)
            else:
                smtp = _WatchedSMTP(c.smtp_host, c.smtp_port, timeout=timeout)
            with smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                refused = smtp.send_message(message, c.sender, list(c.to))
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("SMTP: every recipient was refused") from None
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(f"SMTP {exc.smtp_code} {text}".strip()) from None
        except smtplib.SMTPException as exc:  # disconnected, no STARTTLS, no AUTH offered
            raise DeliveryError(f"SMTP: {str(exc) or type(exc).__name__}") from None
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"SMTP: {_reason(exc)}") from None
        if refused:
            logger.warning(
                "alert e-mail (channel %s): refused for %s", self.name, ", ".join(sorted(refused))
            )


class Log(Channel):
    """The ``llmops.alerts`` logger: ``fired`` at WARNING, ``resolved`` at INFO."""

    def send(self, notification: Notification, timeout: float) -> None:
        n = notification
        level = logging.WARNING if n.event == "fired" else logging.INFO
        logger.log(level, "alert %s: %s: %s", n.event, n.rule, _one_line(n.message))


def _reason(error: BaseException | str) -> str:
    """What went wrong, in a few words, without the URL."""
    if isinstance(error, str):
        return error
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or type(error).__name__}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__


# -- building and delivering --------------------------------------------------------------


def build_channels(alerts: Alerts, env: Mapping[str, str]) -> dict[str, Channel]:
    """Every declared channel, by name, with its URL and credentials read from ``env``.

    Raises :class:`ConfigError` naming the channel and the variable (never its value) when a
    variable is missing or does not hold what it should."""
    return {channel.name: _build(channel, env) for channel in alerts.channels}


def _build(channel: AlertChannel, env: Mapping[str, str]) -> Channel:
    if isinstance(channel, LogChannel):
        return Log(channel.name)
    if isinstance(channel, EmailChannel):
        username = password = None
        if channel.username_env is not None and channel.password_env is not None:
            username = _variable(env, channel.username_env, channel.name)
            password = _variable(env, channel.password_env, channel.name)
        return Email(channel, username, password)
    url = _url(env, channel.url_env, channel.name)  # slack or webhook
    if isinstance(channel, SlackChannel):
        return Slack(channel.name, url)
    headers = None
    if channel.headers_env is not None:
        headers = _headers(env, channel.headers_env, channel.name)
    return Webhook(channel.name, url, headers)


def _variable(env: Mapping[str, str], variable: str, channel: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        raise ConfigError(f"alert channel {channel!r}: environment variable {variable} is not set")
    return value


def _url(env: Mapping[str, str], variable: str, channel: str) -> str:
    url = _variable(env, variable, channel)
    try:
        parts = urllib.parse.urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        usable = False
    if not usable or any(not c.isprintable() or c.isspace() for c in url):
        raise ConfigError(
            f"alert channel {channel!r}: {variable} does not hold an http:// or https:// URL"
        )
    if "@" in parts.netloc:  # user:password@host is never sent: it went to name resolution
        raise ConfigError(
            f"alert channel {channel!r}: {variable} holds a user name or password in the URL; "
            "send credentials as a header (headers_env) instead"
        )
    return url


def _headers(env: Mapping[str, str], variable: str, channel: str) -> dict[str, str]:
    text = _variable(env, variable, channel)
    problem = (
        f"alert channel {channel!r}: {variable} must hold a JSON object of header names "
        "and text values"
    )
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(problem) from None
    if not isinstance(data, dict):
        raise ConfigError(problem)
    for name, value in data.items():
        token = name.replace("-", "").replace("_", "")
        if not (name and token.isascii() and token.isalnum() and isinstance(value, str)):
            raise ConfigError(problem)
        if any(c in value for c in "\r\n\x00"):
            raise ConfigError(problem)
    return data


def dashboard_url(env: Mapping[str, str]) -> str | None:
    """``LLMOPS_DASHBOARD_URL`` (linked from notifications), if set."""
    url = env.get(DASHBOARD_URL_ENV, "").strip()
    if not url:
        return None
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{DASHBOARD_URL_ENV} must be an http:// or https:// URL")
    return url


def deliver(
    channels: Sequence[Channel], notification: Notification, timeout: float
) -> tuple[list[str], list[str]]:
    """Send ``notification`` to every channel at once; wait at most ``timeout`` seconds (plus
    a second of grace) for all of them. Returns the channels that delivered and the failures
    as ``"name: reason"``, both in the order given.

    A webhook's request and an SMTP exchange end at their deadline, but a channel's own
    ``send`` might not: a channel still sending an earlier notification fails this one at
    once instead of starting another thread, so such a channel holds one thread, not one
    per check."""
    results: dict[str, str | None] = {}  # channel -> None (delivered) or the reason
    lock = threading.Lock()

    def attempt(channel: Channel) -> None:
        if not channel._sending.acquire(blocking=False):
            outcome: str | None = "still waiting for an earlier alert's answer"
        else:
            try:
                channel.send(notification, timeout)
                outcome = None
            except DeliveryError as exc:
                outcome = channel.scrub(str(exc))
            except Exception as exc:  # a bug or an unforeseen error: still only this channel
                outcome = channel.scrub(f"{type(exc).__name__}: {exc}")
            finally:
                channel._sending.release()
        with lock:
            results.setdefault(channel.name, outcome)

    threads = [
        threading.Thread(
            target=attempt, args=(channel,), name=f"llmops-alert-{channel.name}", daemon=True
        )
        for channel in channels
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    delivered, failed = [], []
    with lock:
        for channel in channels:
            if channel.name not in results:
                results[channel.name] = f"timed out after {timeout:g}s"
            reason = results[channel.name]
            if reason is None:
                delivered.append(channel.name)
            else:
                failed.append(f"{channel.name}: {reason}")
    for failure in failed:
        logger.warning(
            "alert %s (%s / %s) not delivered to %s",
            notification.event, notification.rule, _one_line(notification.subject), failure,
        )  # fmt: skip
    return delivered, failed
