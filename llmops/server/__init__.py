"""The OpenAI-compatible HTTP server of ``llmops serve`` (:mod:`llmops.server.app`): apps in
any language call models through the Gateway."""

HEAD_TIMEOUT_SECONDS = 30.0
"""How long a request's headers may take to arrive once its first byte has (``llmops serve
--header-timeout``; :mod:`llmops.server.protocol`, kept here so that the CLI does not
import uvicorn to read it)."""
HEAD_TIMEOUT_ENV = "LLMOPS_SERVE_HEADER_TIMEOUT"
"""Where ``llmops serve`` hands its ``--header-timeout`` to the workers."""
METRICS_URL_ENV = "LLMOPS_SERVE_METRICS_URL"
"""Where ``llmops serve --workers N`` (N > 1) tells its workers the one exporter whose
figures every worker's ``/metrics`` serves (run by the supervisor process, on loopback)."""
