"""``llmops dashboard`` finds its app in the ``llmops.dashboard`` package (the repository's
``dashboard/`` folder, mapped at build time). From a wheel, with and without the
``[dashboard]`` extra, it is checked by ``.ci/check-wheel`` (a fresh venv, a served page)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from llmops.cli.dashboard import app_path, streamlit_command

REPO = Path(__file__).resolve().parents[2]


def test_the_app_is_the_llmops_dashboard_package() -> None:
    spec = importlib.util.find_spec("llmops.dashboard")
    assert spec is not None and spec.submodule_search_locations
    assert app_path() == REPO / "dashboard" / "app.py"  # this checkout, installed editable
    assert (app_path().parent / "icon.png").is_file()  # the favicon ships with it
    command = streamlit_command(8501)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(app_path())
