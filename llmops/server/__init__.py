"""The OpenAI-compatible HTTP server of ``llmops serve`` (:mod:`llmops.server.app`): apps in
any language call models through the Gateway."""
