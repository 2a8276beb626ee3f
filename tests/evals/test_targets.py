"""Custom eval targets: an app's Python function and an HTTP service, end to end.

The function targets call the local model server through their own Gateway, as an app
would; their calls must be linked to the eval run and their cost must be the case's.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from llmops.errors import ConfigFileError
from llmops.evals.runner import Runner, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.prompts import PromptRegistry
from llmops.store.engine import create_engine
from llmops.testing import Reply

APP = '''
from llmops import Gateway

GATEWAY = Gateway(database_url={url!r}, home={home!r}, prompts={prompts!r})
ROUTE = {{"api_base": {base!r}, "api_key": "sk-test", "num_retries": 0}}


def answer(question, product="Acme"):
    """Two model calls, as a small pipeline would make: a rewrite, then the answer."""
    rewritten = GATEWAY.complete(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": "Rewrite: " + question}}],
        **ROUTE,
    )
    reply = GATEWAY.complete(
        model="gpt-4o-mini",
        messages=[{{"role": "user", "content": product + ": " + rewritten.text}}],
        tags=["pipeline"],
        **ROUTE,
    )
    return reply.text


async def answer_async(question, product="Acme"):
    reply = await GATEWAY.acomplete(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": question}}], **ROUTE
    )
    return {{"output": reply.text, "tool_calls": reply.tool_calls}}


def broken(question, product="Acme"):
    raise RuntimeError("index not built")


def wrong_type(question, product="Acme"):
    return 42


def offline(question, product="Acme"):
    return "Answer to " + question
'''


def write_suite(folder: Path, body: str) -> Any:
    path = folder / "evals" / "app.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return load_suite(path)


@pytest.fixture
def app_folder(tmp_path: Path, server, database_url: str) -> Path:
    folder = tmp_path / "project"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "pipeline.py").write_text(
        APP.format(
            url=database_url,
            home=str(tmp_path / "home"),
            prompts=str(tmp_path / "none"),
            base=server.base_url,
        )
    )
    return folder


CASES = """\
cases:
  - id: reset
    vars: {question: "How do I reset it?"}
    assert: [{type: icontains, value: reset}]
  - id: wifi
    vars: {question: "Why does wifi drop?", product: Mesh}
    assert: [{type: icontains, value: wifi}, {type: cost, value: 0.01}]
"""


def test_a_function_target_is_linked_to_the_run(
    app_folder: Path, server, make_gateway, database_url: str
) -> None:
    suite = write_suite(app_folder, "target: ../app/pipeline.py:answer\n" + CASES)
    gateway = make_gateway(source="eval")
    the_plan = plan(suite, PromptRegistry(app_folder / "none"))
    (target,) = the_plan.targets
    assert (target.role, target.model, target.name) == ("candidate", "python", target.ref)
    assert len(target.version) == 12  # a digest of the function's file
    report = Runner(gateway).run(the_plan)
    (run,) = report.runs
    results = {r.case_id: r for r in run.results}
    assert all(not r.errored and r.passed for r in results.values()), results
    assert results["wifi"].output == "Echo: Mesh: Echo: Rewrite: Why does wifi drop?"
    assert len(server.requests) == 4  # two calls per case, through the app's own Gateway
    save_report(gateway.engine, report)
    import llmops.gateway

    llmops.gateway.close_all()  # flushes the app's Gateway too
    with create_engine(database_url).connect() as connection:
        calls = connection.execute(
            sa.text("SELECT id, source, tags, metadata, cost_usd FROM llm_calls")
        ).all()
        stored = connection.execute(
            sa.text("SELECT prompt_name, prompt_version, model, passed FROM eval_runs")
        ).one()
    assert len(calls) == 4
    for call in calls:
        metadata = json.loads(call.metadata) if isinstance(call.metadata, str) else call.metadata
        tags = json.loads(call.tags) if isinstance(call.tags, str) else call.tags
        assert call.source == "eval" and metadata["eval_run_id"] == run.id
        assert tags[:2] == ["eval", "app"]
    by_case: dict[str, float] = {}
    for call in calls:
        metadata = json.loads(call.metadata) if isinstance(call.metadata, str) else call.metadata
        by_case[metadata["case"]] = by_case.get(metadata["case"], 0.0) + call.cost_usd
    for case_id, result in results.items():
        assert result.cost_usd == pytest.approx(by_case[case_id], rel=1e-9)
        assert result.call_id in {c.id for c in calls}
    assert tuple(stored) == (target.name, target.version, "python", 2)


def test_async_functions_and_tool_calls(app_folder: Path, server, make_gateway) -> None:
    suite = write_suite(
        app_folder,
        """\
        target: ../app/pipeline.py:answer_async
        cases:
          - id: track
            vars: {question: "Where is P-1?"}
            assert: [{type: equals, value: ""}]
        """,
    )
    server.enqueue(Reply(tool_calls=[{"name": "track", "arguments": {"id": "P-1"}}]))
    report = Runner(make_gateway()).run(plan(suite, PromptRegistry(app_folder / "none")))
    (result,) = report.runs[0].results
    assert not result.errored and result.passed


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        ("broken", "raised RuntimeError: index not built"),
        ("wrong_type", "returned int: expected a text"),
    ],
)
def test_a_failing_target_errors_the_case(
    app_folder: Path, make_gateway, function: str, reason: str
) -> None:
    suite = write_suite(app_folder, f"target: ../app/pipeline.py:{function}\n" + CASES)
    report = Runner(make_gateway()).run(plan(suite, PromptRegistry(app_folder / "none")))
    for result in report.runs[0].results:
        assert result.errored and reason in (result.error or "")
    assert report.runs[0].completed == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("prompt: greet\ntarget: app.py:f\n", "'prompts' or 'target', only one"),
        ("target: app.py:f\nversions: [working]\n", "'versions' and 'models' are for prompts"),
        ("target: {http: ftp://x}\n", "target"),
    ],
)
def test_bad_targets_are_load_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        write_suite(tmp_path, body + CASES)


def test_a_missing_function_is_a_plan_error(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "target: nowhere.py:answer\n" + CASES)
    with pytest.raises(ConfigFileError, match="no file"):
        plan(suite, PromptRegistry(tmp_path / "none"))


def test_the_cli_runs_a_target_suite(cli, app_folder: Path, database_url: str) -> None:
    write_suite(app_folder, "target: ../app/pipeline.py:offline\nthreshold: 1\n" + CASES)
    env = {"LLMOPS_HOME": str(app_folder / "home"), "LLMOPS_DATABASE_URL": database_url}
    dry = cli("eval", "run", "evals/app.yaml", "--dry-run", cwd=app_folder, env=env)
    assert dry.code == 0, dry.stderr
    assert "2 run(s) of the app target" in dry.stdout
    result = cli("eval", "run", "evals/app.yaml", cwd=app_folder, env=env)
    assert result.code == 1, result.stdout + result.stderr  # "wifi" is not in the answer
    assert "1/2" in result.stdout or "50%" in result.stdout
    missing = cli("eval", "run", "evals/nope.yaml", cwd=app_folder, env=env)
    assert missing.code == 2 and missing.stderr.startswith("error:")


# -- HTTP targets ------------------------------------------------------------------------


class Service(BaseHTTPRequestHandler):
    """A service in another language, as far as the runner can tell."""

    disable_nagle_algorithm = True
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Service.seen.append({"body": body, "headers": dict(self.headers)})
        if body.get("question") == "fail":
            self._send(500, b'{"error": "boom"}')
            return
        if body.get("question") == "huge":  # 11 MB, past what the runner reads
            self._send(200, b'{"data": {"answer": "' + b"x" * (11 * 2**20) + b'"}}')
            return
        answer = {"data": {"answer": f"About {body.get('question')}", "sources": [1, 2]}}
        self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    Service.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/answer"
    httpd.shutdown()
    httpd.server_close()


def test_an_http_target(tmp_path: Path, service: str, make_gateway, monkeypatch) -> None:
    monkeypatch.setenv("APP_TOKEN", "t0ken-never-stored")
    suite = write_suite(
        tmp_path,
        f"""\
        target:
          http: {service}
          headers: {{Authorization: "Bearer ${{APP_TOKEN}}"}}
          body: {{question: "{{{{ question }}}}", lang: en}}
          output: data.answer
        cases:
          - id: reset
            vars: {{question: reset}}
            assert: [{{type: equals, value: About reset}}]
          - id: fail
            vars: {{question: fail}}
            assert: [{{type: contains, value: x}}]
          - id: huge
            vars: {{question: huge}}
            assert: [{{type: contains, value: x}}]
        """,
    )
    gateway = make_gateway()
    report = Runner(gateway).run(plan(suite, PromptRegistry(tmp_path / "none")))
    results = {r.case_id: r for r in report.runs[0].results}
    assert results["reset"].passed and not results["reset"].errored
    assert results["fail"].errored and "answered 500" in (results["fail"].error or "")
    assert results["huge"].errored and "over 10 MB" in (results["huge"].error or "")
    sent = next(s for s in Service.seen if s["body"]["question"] == "reset")
    assert sent["body"] == {"question": "reset", "lang": "en"}
    assert sent["headers"]["Authorization"] == "Bearer t0ken-never-stored"
    metadata = json.loads(sent["headers"]["x-llmops-metadata"])
    assert metadata["eval_run_id"] == report.runs[0].id and metadata["case"] == "reset"
    assert "t0ken" not in suite.spec.model_dump_json()


def test_an_http_target_without_its_token_is_a_config_error(tmp_path: Path, service: str):
    """A header's `${NAME}` missing from the environment errored every case after the run
    started (exit 3); it is found with the suite, before any call (exit 2)."""
    suite = write_suite(
        tmp_path,
        f"""\
        target: {{http: {service}, headers: {{Authorization: "Bearer ${{NOT_SET_ANYWHERE}}"}}}}
        cases:
          - vars: {{question: reset}}
            assert: [{{type: contains, value: reset}}]
        """,
    )
    with pytest.raises(ConfigFileError, match=r"header Authorization needs \$\{NOT_SET_ANYWHERE\}"):
        plan(suite, PromptRegistry(tmp_path / "none"))
    assert Service.seen == []


def test_a_target_past_its_timeout_errors_and_the_run_ends(real_cli, tmp_path: Path) -> None:
    """A stuck function is left behind after its timeout: the case errors and the process
    exits, not waiting for the thread (asyncio's executor would wait 60 s here)."""
    import time

    (tmp_path / "app.py").write_text("import time\n\ndef answer(question):\n    time.sleep(60)\n")
    (tmp_path / "suite.yaml").write_text(
        "target: {python: app.py:answer, timeout: 1}\n"
        "cases:\n  - vars: {question: hi}\n    assert: [{type: contains, value: x}]\n"
    )
    env = {"LLMOPS_HOME": str(tmp_path / "home"),
           "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}"}  # fmt: skip
    started = time.monotonic()
    result = real_cli("eval", "run", "suite.yaml", cwd=tmp_path, env=env)
    assert time.monotonic() - started < 40  # far from the 60 s the thread sleeps
    assert result.code == 3, result.stdout + result.stderr  # errored: inconclusive
    assert "took longer than 1 s" in result.stdout + result.stderr
