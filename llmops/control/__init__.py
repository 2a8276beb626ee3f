"""Spend control and observability over the recorded calls: alert rules and channels
(:mod:`llmops.control.alerts`, :mod:`llmops.control.channels`), the Prometheus exporter
(:mod:`llmops.control.metrics`) and OpenTelemetry export (:mod:`llmops.control.otel`).

These modules read the store (its query modules) and the config; the gateway uses them, never
the other way round. Budget enforcement itself lives with the gateway
(:mod:`llmops.gateway.budgets`)."""
