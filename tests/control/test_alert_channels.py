"""Alert channels against real receivers: a local HTTP server (JSON webhook, Slack payload)
and a local SMTP server (aiosmtpd), including receivers that fail or hang."""

from __future__ import annotations

import logging
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmops.config import Alerts
from llmops.control.channels import (
    DeliveryError,
    Log,
    Notification,
    build_channels,
    dashboard_url,
    deliver,
)
from llmops.errors import ConfigError
from tests.control.receivers import DrippingSmtp, HttpReceiver, SmtpReceiver, free_port

AT = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
TOKEN = "T0000/B0000/XXXXsecretXXXX"


def notification(**overrides: object) -> Notification:
    values: dict[str, object] = {
        "event": "fired",
        "rule": "errors",
        "kind": "error_rate",
        "subject": "gpt-4o",
        "key": "errors|gpt-4o",
        "value": 0.12,
        "threshold": 0.05,
        "window": "15m",
        "message": "gpt-4o: 12.0% of 150 calls failed in the last 15m (alert above 5.0%)",
        "at": AT,
        "dashboard": None,
    }
    values.update(overrides)
    return Notification(**values)  # type: ignore[arg-type]


def channels(env: dict[str, str], *declared: dict[str, object]):
    return build_channels(Alerts.model_validate({"channels": list(declared)}), env)


@pytest.fixture
def receiver():
    with HttpReceiver() as server:
        yield server


def test_webhook_posts_the_documented_json_body(receiver: HttpReceiver) -> None:
    env = {"HOOK": receiver.url("/alerts"), "HOOK_HEADERS": '{"Authorization": "Bearer abc"}'}
    built = channels(
        env, {"name": "hooks", "type": "webhook", "url_env": "HOOK", "headers_env": "HOOK_HEADERS"}
    )
    built["hooks"].send(notification(dashboard="https://dash.example/"), timeout=5)
    (request,) = receiver.requests
    assert request.path == "/alerts"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == "Bearer abc"
    assert request.json == {
        "version": 1,
        "source": "llmops",
        "event": "fired",
        "rule": "errors",
        "kind": "error_rate",
        "subject": "gpt-4o",
        "key": "errors|gpt-4o",
        "value": 0.12,
        "threshold": 0.05,
        "window": "15m",
        "message": "gpt-4o: 12.0% of 150 calls failed in the last 15m (alert above 5.0%)",
        "at": "2026-12-02T15:30:00+00:00",
        "dashboard": "https://dash.example/",
    }


def test_slack_payload_has_text_and_blocks_with_mrkdwn_escaped(receiver: HttpReceiver) -> None:
    built = channels({"SLACK": receiver.url(f"/services/{TOKEN}")},
                     {"name": "ops", "type": "slack", "url_env": "SLACK"})  # fmt: skip
    sneaky = notification(
        event="resolved", subject="<!channel> & co", message="all <good> again",
        dashboard="https://dash.example/?page=alerts",
    )  # fmt: skip
    built["ops"].send(sneaky, timeout=5)
    (request,) = receiver.requests
    assert request.path == f"/services/{TOKEN}"
    assert request.json == {
        "text": "RESOLVED: errors / &lt;!channel&gt; &amp; co: all &lt;good&gt; again",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":white_check_mark: *RESOLVED: errors / &lt;!channel&gt; &amp; co*\n"
                    "all &lt;good&gt; again",
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "rule `errors` (error_rate) · window 15m · "
                        "<https://dash.example/?page=alerts|Open the dashboard>",
                    }
                ],
            },
        ],
    }


def test_email_subject_body_and_recipients() -> None:
    with SmtpReceiver() as smtp:
        built = channels({}, {
            "name": "oncall", "type": "email", "to": ["oncall@acme.test", "lead@acme.test"],
            "from": "llmops@acme.test", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
        })  # fmt: skip
        built["oncall"].send(notification(dashboard="https://dash.example/"), timeout=5)
        (mail,) = smtp.wait(1)
    assert mail.mail_from == "llmops@acme.test"
    assert mail.rcpt_tos == ["oncall@acme.test", "lead@acme.test"]
    message = mail.message
    assert message["Subject"] == "[llmops] FIRING: errors / gpt-4o"
    assert message["From"] == "llmops@acme.test"
    assert message["To"] == "oncall@acme.test, lead@acme.test"
    assert message.get_content_type() == "text/plain"
    assert message.get_content().splitlines() == [
        "gpt-4o: 12.0% of 150 calls failed in the last 15m (alert above 5.0%)",
        "",
        "Rule:      errors (error_rate)",
        "Subject:   gpt-4o",
        "Event:     fired",
        "Value:     0.12",
        "Threshold: 0.05",
        "Window:    15m",
        "At:        2026-12-02 15:30:00 UTC",
        "Dashboard: https://dash.example/",
        "",
        "-- ",
        "llmops alerts",
    ]


def test_email_subject_cannot_carry_extra_headers() -> None:
    with SmtpReceiver() as smtp:
        built = channels({}, {"name": "m", "type": "email", "to": ["a@acme.test"],
                              "from": "b@acme.test", "smtp_host": "127.0.0.1",
                              "smtp_port": smtp.port})  # fmt: skip
        built["m"].send(notification(subject="x\r\nBcc: evil@attacker.test"), timeout=5)
        (mail,) = smtp.wait(1)
    assert mail.rcpt_tos == ["a@acme.test"]
    assert mail.message["Bcc"] is None
    assert mail.message["Subject"] == "[llmops] FIRING: errors / x  Bcc: evil@attacker.test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_email_over_starttls_with_a_login(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    env = {"SMTP_USER": "alerts", "SMTP_PASSWORD": "s3cret-pw"}
    config = {
        "name": "mail", "type": "email", "to": ["oncall@acme.test"], "from": "llmops@acme.test",
        "smtp_host": "127.0.0.1", "starttls": True,
        "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD",
    }  # fmt: skip
    with SmtpReceiver(logins={"alerts": "s3cret-pw"}, tls=server_tls) as smtp:
        built = channels(env, {**config, "smtp_port": smtp.port})
        built["mail"].send(notification(), timeout=5)
        assert len(smtp.wait(1)) == 1
        # a wrong password is refused by the server: a delivery error, without the password
        wrong = channels({**env, "SMTP_PASSWORD": "wrong-pw"}, {**config, "smtp_port": smtp.port})
        with pytest.raises(DeliveryError, match=r"^SMTP 535") as refused:
            wrong["mail"].send(notification(), timeout=5)
        assert "wrong-pw" not in str(refused.value)
        # without STARTTLS the server refuses to go on
        plain = channels({}, {**config, "starttls": False, "smtp_port": smtp.port,
                              "username_env": None, "password_env": None})  # fmt: skip
        with pytest.raises(DeliveryError, match=r"^SMTP 530"):
            plain["mail"].send(notification(), timeout=5)
        assert len(smtp.messages) == 1


def test_an_untrusted_certificate_is_a_delivery_error(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with SmtpReceiver(tls=server_tls) as smtp:
        built = channels({}, {"name": "m", "type": "email", "to": ["a@acme.test"],
                              "from": "b@acme.test", "smtp_host": "127.0.0.1",
                              "smtp_port": smtp.port, "starttls": True})  # fmt: skip
        with pytest.raises(DeliveryError, match=r"^SMTP: TLS: CERTIFICATE_VERIFY_FAILED"):
            built["m"].send(notification(), timeout=5)
        assert smtp.messages == []


def test_failures_name_the_problem_never_the_url(receiver: HttpReceiver) -> None:
    secret_path = f"/services/{TOKEN}"
    env = {"SLACK": receiver.url(secret_path), "DOWN": f"http://127.0.0.1:{free_port()}/{TOKEN}"}
    built = channels(env, {"name": "ops", "type": "slack", "url_env": "SLACK"},
                     {"name": "down", "type": "webhook", "url_env": "DOWN"})  # fmt: skip
    receiver.status = 500
    with pytest.raises(DeliveryError) as error:
        built["ops"].send(notification(), timeout=5)
    assert str(error.value) == "HTTP 500"
    receiver.status = 302  # a redirect is not followed (the body would go elsewhere)
    with pytest.raises(DeliveryError, match=r"^HTTP 302$"):
        built["ops"].send(notification(), timeout=5)
    with pytest.raises(DeliveryError) as refused:
        built["down"].send(notification(), timeout=5)
    assert str(refused.value) == "connection refused"
    assert "ops" in repr(built["ops"]) and TOKEN not in repr(built["ops"])


def test_a_hanging_receiver_times_out_and_others_still_deliver(
    receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with HttpReceiver() as slow:
        slow.hang = True
        env = {"SLOW": slow.url(f"/{TOKEN}"), "FAST": receiver.url()}
        built = channels(env, {"name": "slow", "type": "webhook", "url_env": "SLOW"},
                         {"name": "fast", "type": "webhook", "url_env": "FAST"},
                         {"name": "log", "type": "log"})  # fmt: skip
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="llmops.alerts"):
            delivered, failed = deliver(list(built.values()), notification(), timeout=1.0)
        took = time.monotonic() - started
    assert delivered == ["fast", "log"]
    assert failed == ["slow: timed out"]
    assert 0.9 < took < 2.5  # the socket timeout, not the receiver, ended it
    assert len(receiver.requests) == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "llmops.alerts"]
    assert logged == [
        "alert fired: errors: gpt-4o: 12.0% of 150 calls failed in the last 15m (alert above 5.0%)",
        "alert fired (errors / gpt-4o) not delivered to slow: timed out",
    ]
    assert caplog.records[0].levelno == logging.WARNING
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_the_common_deadline_bounds_a_receiver_that_trickles(receiver: HttpReceiver) -> None:
    """A channel that keeps a socket busy past the deadline is reported as timed out at the
    deadline (plus a second of grace), whatever its socket timeouts do."""

    class Stuck(Log):
        def send(self, notification: Notification, timeout: float) -> None:
            time.sleep(5)

    started = time.monotonic()
    delivered, failed = deliver([Stuck("stuck")], notification(), timeout=0.5)
    assert (delivered, failed) == ([], ["stuck: timed out after 0.5s"])
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("drip", ["body", "headers"])
def test_a_receiver_that_sends_a_byte_at_a_time_holds_one_thread(drip: str) -> None:
    """Each read waits ``timeout`` at most, so a receiver that sends a byte at a time never
    timed out: a delivery's thread stayed for as long as it sent, and every check (the
    alert not delivered, retried) added one more thread and socket. The request now ends
    at its deadline, whatever it waits for."""
    with HttpReceiver() as slow:
        slow.drip = drip
        built = channels({"D": slow.url()}, {"name": "drip", "type": "webhook", "url_env": "D"})
        first = deliver(list(built.values()), notification(), timeout=0.5)
        second = deliver(list(built.values()), notification(), timeout=0.5)
        alive = [t for t in threading.enumerate() if t.name == "llmops-alert-drip"]
    if drip == "body":  # the status is the answer: the body is not waited for
        assert first == second == (["drip"], [])
        assert alive == []
    else:
        assert first == second == ([], ["drip: timed out"])
        assert alive == [] and len(slow.requests) == 2


def test_an_smtp_server_that_answers_a_byte_at_a_time_is_cut_off_at_the_deadline() -> None:
    """Each of smtplib's reads waits ``timeout`` at most: a server that greeted a byte at a
    time held the delivery's thread for as long as it sent, and every later alert of that
    channel failed as still waiting for the first. The exchange now ends at its deadline."""
    with DrippingSmtp() as slow:
        built = channels({}, {"name": "drip", "type": "email", "to": ["a@acme.test"],
                              "from": "b@acme.test", "smtp_host": "127.0.0.1",
                              "smtp_port": slow.port})  # fmt: skip
        started = time.monotonic()
        first = deliver(list(built.values()), notification(), timeout=0.5)
        second = deliver(list(built.values()), notification(), timeout=0.5)
        took = time.monotonic() - started
        time.sleep(0.2)  # the threads' last steps after their answer
        alive = [t for t in threading.enumerate() if t.name == "llmops-alert-drip"]
    assert first == second == ([], ["drip: SMTP: timed out"])
    assert slow.connections == 2 and alive == []
    assert took < 3.0


@pytest.mark.parametrize(
    ("declared", "env", "expected"),
    [
        ({"name": "ops", "type": "slack", "url_env": "SLACK_URL"}, {},
         "alert channel 'ops': environment variable SLACK_URL is not set"),
        ({"name": "ops", "type": "slack", "url_env": "SLACK_URL"}, {"SLACK_URL": "  "},
         "alert channel 'ops': environment variable SLACK_URL is not set"),
        ({"name": "h", "type": "webhook", "url_env": "U"}, {"U": f"ftp://host/{TOKEN}"},
         "alert channel 'h': U does not hold an http:// or https:// URL"),
        ({"name": "h", "type": "webhook", "url_env": "U"}, {"U": f"http://:99/{TOKEN}"},
         "alert channel 'h': U does not hold an http:// or https:// URL"),
        ({"name": "h", "type": "webhook", "url_env": "U"}, {"U": "http://ops:s3cret@x/h"},
         "alert channel 'h': U holds a user name or password in the URL; send credentials "
         "as a header (headers_env) instead"),
        ({"name": "h", "type": "webhook", "url_env": "U", "headers_env": "H"},
         {"U": "http://x", "H": f"Bearer {TOKEN}"},
         "alert channel 'h': H must hold a JSON object of header names and text values"),
        ({"name": "h", "type": "webhook", "url_env": "U", "headers_env": "H"},
         {"U": "http://x", "H": '{"X-Evil": "a\\r\\nInjected: 1"}'},
         "alert channel 'h': H must hold a JSON object of header names and text values"),
        ({"name": "m", "type": "email", "to": ["a@b.c"], "from": "d@e.f",
          "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"}, {"SMTP_USER": "u"},
         "alert channel 'm': environment variable SMTP_PASSWORD is not set"),
    ],
)  # fmt: skip
def test_channel_environment_errors_name_the_variable_not_its_value(
    declared: dict[str, object], env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        channels(env, declared)
    assert str(error.value) == expected
    assert TOKEN not in str(error.value)


def test_dashboard_url() -> None:
    assert dashboard_url({}) is None
    assert dashboard_url({"LLMOPS_DASHBOARD_URL": "https://d.example/x "}) == "https://d.example/x"
    with pytest.raises(ConfigError, match="LLMOPS_DASHBOARD_URL must be an http"):
        dashboard_url({"LLMOPS_DASHBOARD_URL": "javascript:alert(1)"})


def test_an_smtp_server_echoing_the_login_never_gets_the_password_stored() -> None:
    """SMTP AUTH sends the password base64-encoded; a server that quotes the command in its
    refusal put it in `alert_events.failed` and on the console."""
    import base64

    declared = {"name": "m", "type": "email", "to": ["a@b.c"], "from": "d@e.f",
                "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD"}  # fmt: skip
    email = channels({"SMTP_USER": "ops", "SMTP_PASSWORD": "hunter2-secret"}, declared)["m"]
    plain = base64.b64encode(b"\0ops\0hunter2-secret").decode()
    login = base64.b64encode(b"hunter2-secret").decode()
    reply = f"535 5.7.8 authentication failed: AUTH PLAIN {plain} / {login}"
    scrubbed = email.scrub(reply)
    assert plain not in scrubbed and login not in scrubbed and "hunter2" not in scrubbed
    assert scrubbed.startswith("535 5.7.8 authentication failed: AUTH PLAIN ")
