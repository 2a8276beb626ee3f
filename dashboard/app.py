"""The llmops dashboard: ``streamlit run dashboard/app.py`` (what ``llmops dashboard`` runs).

Settings come from the environment (``LLMOPS_DATABASE_URL``, ``LLMOPS_PROMPTS_DIR``,
``LLMOPS_DAILY_BUDGET``, ``LLMOPS_MONTHLY_BUDGET``, ``LLMOPS_DASHBOARD_PASSWORD``) or
``llmops.yaml``. The sidebar's date range and filters are mirrored in the URL, so a link
reproduces a view: ``/?days=30&model=gpt-4o-mini&by=model``.
"""

from __future__ import annotations

from pathlib import Path

import _common
import streamlit as st

from llmops.errors import DatabaseError

# The favicon is a file of ours: a material icon would be fetched from fonts.gstatic.com on
# every page load (an error offline).
ICON = str(Path(__file__).with_name("icon.png"))
st.set_page_config(page_title="llmops", page_icon=ICON, layout="wide")

# Every page starts with _common.page_view(): the password form until it is entered (the
# navigation stays hidden meanwhile), then the sidebar's date range and filters.
signed_in = _common.signed_in(_common.load_settings())
try:
    _common.navigation("sidebar" if signed_in else "hidden").run()
except DatabaseError as exc:  # the database stopped answering under a page: one line
    st.error(f"The database is not answering ({exc}). Reload the page once it is back.")
