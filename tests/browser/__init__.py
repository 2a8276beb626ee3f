"""Tests that drive the dashboard in a real headless Chromium (``pytest -m browser``)."""
