"""Import litellm once, configured for offline, reproducible use. The gateway and pricing
call this, and only when they need a model or a price."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_PRICE_MAP_SOURCE: str | None = None


def tokenizer_dir() -> Path | None:
    """The folder of tiktoken encodings that ships inside litellm (no network needed)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils/tokenizers"
    return folder if folder.is_dir() else None


def configure_environment(*, remote_price_map: bool = False) -> None:
    """Environment that must be set before litellm or tiktoken is imported."""
    if not remote_price_map:
        # Without this, importing litellm fetches the price map from the network and may
        # swap it mid-process from a background thread: prices would not be reproducible.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    folder = tokenizer_dir()
    if folder is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(folder))
    os.environ.setdefault("LITELLM_TELEMETRY", "False")


def load(*, remote_price_map: bool = False) -> ModuleType:
    """The litellm module, imported and configured on first use (it takes ~4 s)."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "completion"):
        return module
    configure_environment(remote_price_map=remote_price_map)
    import litellm

    litellm.disable_hf_tokenizer_download = True  # some model names would try a download
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def price_map_source() -> str:
    """Which price map litellm uses: its version and whether the map is the bundled one."""
    global _PRICE_MAP_SOURCE
    if _PRICE_MAP_SOURCE is None:
        litellm = load()
        info: Any = None
        getter = getattr(litellm, "get_model_cost_map_source_info", None)
        if callable(getter):
            try:
                info = getter()
            except Exception:
                info = None
        local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"
        kind = "bundled" if local else "remote"
        if isinstance(info, dict) and info.get("source"):
            kind = str(info["source"])
        from importlib.metadata import version

        _PRICE_MAP_SOURCE = f"litellm-{version('litellm')}:{kind}"
    return _PRICE_MAP_SOURCE
