"""Fixtures for the fake model server's tests."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    """litellm with the bundled price map and without its debug banner."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    return litellm
