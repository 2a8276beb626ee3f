"""Importers: suites and prompt files from other eval tools' configs (promptfoo)."""
