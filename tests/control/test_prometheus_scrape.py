"""A real Prometheus server scrapes ``llmops metrics`` (a real process) and its query API
returns the spend of the calls a Gateway recorded, before and after more calls."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmops.testing import Reply
from tests.control.test_metrics import dashboard_queries
from tests.fixtures.postgres import free_port

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
GRAFANA_VARIABLES = {  # what Grafana puts in place of its variables (All selected)
    "$__rate_interval": "5s", "$__range": "1h", "$__interval": "5s", "$job": ".*",
    "$model": ".*", "$prompt": ".*", "$source": ".*",
}  # fmt: skip
RATE = "sum(rate(llmops_spend_usd_total[5s]))"
M = 1_000_000
MINI = (0.15, 0.60)  # openai/gpt-4o-mini, $ per million input / output tokens


def wait_for(what: str, check: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            body = json.load(response)
    except urllib.error.HTTPError as exc:  # 400: not valid PromQL
        raise AssertionError(f"{promql}: {exc.read().decode()}") from None
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def value(base: str, promql: str) -> float | None:
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


@pytest.fixture
def process_stopper() -> Iterator[Callable[[subprocess.Popen[bytes]], subprocess.Popen[bytes]]]:
    """Processes started in a test are stopped (SIGTERM, then SIGKILL) after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield lambda process: started.append(process) or process  # type: ignore[func-returns-value]
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed "
                    "(bash .ci/install-system-packages installs it)")  # fmt: skip
def test_prometheus_scrapes_the_spend(make_gateway, server, database_url, tmp_path: Path,
                                      process_stopper) -> None:  # fmt: skip
    gw = make_gateway()

    def call(prompt_tokens: int, completion_tokens: int) -> float:
        server.enqueue(Reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        gw.complete(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                    api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
        return prompt_tokens * MINI[0] / M + completion_tokens * MINI[1] / M

    expected = call(1000, 200) + call(3000, 500)
    gw.flush()

    (tmp_path / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: daily, window: day, limit_usd: 2}\n"
    )
    exporter_port, prometheus_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    exporter = process_stopper(
        subprocess.Popen(
            [sys.executable, "-m", "llmops", "metrics", "--port", str(exporter_port),
             "--cache-seconds", "0.5", "--database-url", database_url],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "exporter.log", "wb"),  # noqa: SIM115
        )
    )  # fmt: skip
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: llmops\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    prometheus = process_stopper(
        subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
        )
    )  # fmt: skip
    base = f"http://127.0.0.1:{prometheus_port}"

    def spend() -> float | None:
        assert exporter.poll() is None, (tmp_path / "exporter.log").read_text()
        assert prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
        return value(base, "sum(llmops_spend_usd_total)")

    def ready() -> bool:  # Prometheus answers 503 to queries until its storage is open
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as answer:  # noqa: S310
            return bool(answer.status == 200)

    wait_for("Prometheus to be ready", ready)  # an HTTPError (503) is an OSError: retried
    wait_for("the first scrape", lambda: spend() is not None)
    assert spend() == pytest.approx(expected, rel=1e-9)
    assert value(base, 'up{job="llmops"}') == 1
    assert value(base, "llmops_database_up") == 1
    assert value(base, 'sum(llmops_calls_total{status="ok"})') == 2
    assert value(base, 'sum(llmops_tokens_total{type="prompt"})') == 4000
    [series] = query(base, "llmops_spend_usd_total")
    assert series["metric"] == {  # type: ignore[comparison-overlap]
        "__name__": "llmops_spend_usd_total", "job": "llmops",
        "instance": f"127.0.0.1:{exporter_port}", "model": "openai/gpt-4o-mini",
        "prompt": "(none)", "version": "(none)", "source": "app",
    }  # fmt: skip
    # the latency summary and its quantiles reach Prometheus too
    assert value(base, 'sum(llmops_latency_seconds_count{model="openai/gpt-4o-mini"})') == 2
    assert value(base, 'count(llmops_latency_seconds{quantile="0.95"})') == 1

    # more calls: the next scrapes see them
    expected += call(10_000, 1000)
    gw.flush()
    wait_for("the new spend", lambda: spend() == pytest.approx(expected, rel=1e-9))
    assert value(base, 'sum(llmops_calls_total{status="ok"})') == 3

    assert value(base, 'llmops_budget_used_ratio{budget="daily"}') == pytest.approx(expected / 2)

    # every query of the Grafana dashboard is valid PromQL, and the main panels have data
    wait_for("a rate over two scrapes", lambda: value(base, RATE) is not None)
    for expr in dashboard_queries():
        promql = expr
        for variable, replacement in GRAFANA_VARIABLES.items():
            promql = promql.replace(variable, replacement)
        # a variable's label_values(METRIC, LABEL) is Grafana's: the PromQL it stands for
        promql = re.sub(r"^label_values\((.*), (\w+)\)$", r"group by (\2) (\1)", promql)
        result = query(base, promql)  # asserts the status is success
        if "llmops_budget_projected_usd" in expr and datetime.now(UTC).hour == 0:
            continue  # no projection in the daily window's first hour
        if any(name in expr for name in ("llmops_spend_usd_total", "llmops_budget", "p95")):
            assert result, f"no data for {promql}"

    exporter.terminate()
    assert exporter.wait(timeout=10) == 0  # SIGTERM: a clean stop
