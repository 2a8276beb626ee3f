"""Import litellm once, configured for offline, reproducible use. The gateway and pricing
call this, and only when they need a model or a price.

Prices alone do not need the import (~4 s): while litellm is not imported and its bundled
price map is the one in use (always, unless ``remote_price_map``), :func:`model_cost` reads
the map from the JSON file litellm ships, finalized as litellm finalizes it, so that every
entry equals ``litellm.model_cost``'s (tests/pricing/test_price_map.py checks each one).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

_PRICE_MAP_SOURCE: str | None = None
BUNDLED_PRICE_MAP = "model_prices_and_context_window_backup.json"
"""The price map inside the litellm package (what ``LITELLM_LOCAL_MODEL_COST_MAP`` loads)."""
_NOT_MODELS = ("fallback_generalizations",)  # rules litellm takes out of the map on load


def package_dir() -> Path | None:
    """The installed litellm package folder, found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def tokenizer_dir() -> Path | None:
    """The folder of tiktoken encodings that ships inside litellm (no network needed)."""
    package = package_dir()
    if package is None:
        return None
    folder = package / "litellm_core_utils/tokenizers"
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


def uses_bundled_price_map(*, remote_price_map: bool = False) -> bool:
    """Whether litellm loads (or would load) its bundled price map rather than fetch one:
    ``LITELLM_LOCAL_MODEL_COST_MAP=True``, which :func:`configure_environment` sets unless
    ``remote_price_map`` (or the user set it otherwise), or ``LITELLM_OFFLINE_MODE=true``."""
    configure_environment(remote_price_map=remote_price_map)
    local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"
    return local or os.environ.get("LITELLM_OFFLINE_MODE", "").strip().lower() == "true"


def _imported() -> ModuleType | None:
    module = sys.modules.get("litellm")
    return module if module is not None and hasattr(module, "completion") else None


def imported() -> ModuleType | None:
    """The litellm module if it is imported already, else None (never imports it)."""
    return _imported()


def openai_api_base(params: Mapping[str, Any]) -> str | None:
    """Where litellm sends a call to OpenAI: the call's ``api_base`` (or ``base_url``), else
    ``litellm.api_base`` (when the app imported litellm to set it), ``OPENAI_BASE_URL``,
    ``OPENAI_API_BASE``; None: OpenAI's default host."""
    settings = _imported()
    base = (
        params.get("api_base")
        or params.get("base_url")
        or getattr(settings, "api_base", None)
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
    )
    return base if isinstance(base, str) and base else None


def openai_route(model: str) -> tuple[str, str] | None:
    """litellm's routing of an OpenAI model name (the name OpenAI knows, ``"openai"``),
    decided without importing litellm: ``openai/NAME``, or a name the bundled price map
    lists under the ``openai`` provider. None when litellm must decide (any other name, a
    model alias, a fine-tune id, a price map other than the bundled one, or litellm
    already imported: it may have models registered at run time)."""
    if _imported() is not None or not uses_bundled_price_map():
        return None
    return bundled_openai_route(model)


def bundled_openai_route(model: str) -> tuple[str, str] | None:
    """:func:`openai_route` by the bundled price map alone (whether or not litellm is
    imported): what litellm's ``get_llm_provider`` answers for those names."""
    name = model.removeprefix("openai/")
    if not name or name.startswith("ft:") or name in _aliases():
        return None
    if name != model:
        return name, "openai"
    cost = bundled_model_cost() or {}
    entry = cost.get(model)
    if isinstance(entry, dict) and entry.get("litellm_provider") == "openai":
        return model, "openai"
    return None


@functools.cache
def _aliases() -> frozenset[str]:
    """Names the bundled map gives as aliases of other models (litellm routes them to the
    model they stand for)."""
    package = package_dir()
    try:
        raw = json.loads((package / BUNDLED_PRICE_MAP).read_bytes()) if package else {}
    except (OSError, ValueError):
        return frozenset()
    names: set[str] = set()
    for name, info in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(info, dict):
            continue
        if isinstance(info.get("alias_of"), str):
            names.add(name)
        aliases = info.get("aliases")
        if isinstance(aliases, list):
            names.update(a for a in aliases if isinstance(a, str))
    return frozenset(names)


def model_cost(*, remote_price_map: bool = False) -> Mapping[str, Any]:
    """litellm's price map, ``litellm.model_cost``: litellm's own once it is imported (it
    may hold a fetched map or models registered at run time); before that, with the bundled
    map in use, the bundled file read directly; else litellm, imported (it fetches)."""
    module = _imported()
    if module is not None:
        return module.model_cost  # type: ignore[no-any-return]
    if uses_bundled_price_map(remote_price_map=remote_price_map):
        bundled = bundled_model_cost()
        if bundled is not None:
            return bundled
    return load(remote_price_map=remote_price_map).model_cost  # type: ignore[no-any-return]


@functools.cache
def bundled_model_cost() -> Mapping[str, Any] | None:
    """The bundled price map as ``litellm.model_cost`` holds it after loading it: without
    the fallback rules, and with model aliases expanded (a row ``alias_of: X`` and each name
    in a row's ``aliases`` list served as X's entry). None when the file cannot be read."""
    package = package_dir()
    if package is None:
        return None
    try:
        raw = json.loads((package / BUNDLED_PRICE_MAP).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    for key in _NOT_MODELS:
        raw.pop(key, None)
    return _expand_aliases({k: v for k, v in raw.items() if isinstance(v, dict)})


def _expand_aliases(cost: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """litellm's ``_expand_model_aliases``, conflicts resolved the same way: an alias that
    is already a model's own name, or claimed before, is skipped; a pointer to nothing (or
    to another pointer) is dropped."""
    pointers = {
        name: target
        for name, info in cost.items()
        if isinstance(target := info.get("alias_of"), str)
    }
    owners: dict[str, str] = {}
    listing: list[str] = []
    for name, info in cost.items():
        aliases = info.get("aliases")
        if aliases is None or name in pointers:
            continue
        listing.append(name)
        for alias in aliases if isinstance(aliases, list) else ():
            if (alias in cost and alias not in pointers) or alias in owners:
                continue
            owners[alias] = name
    for alias, target in pointers.items():
        if target in cost and target not in pointers and alias not in owners:
            owners[alias] = target
    for name in listing:
        cost[name].pop("aliases", None)
    for alias in pointers.keys() - owners.keys():
        cost.pop(alias)
    for alias, owner in owners.items():
        cost[alias] = cost[owner]
    return cost


@functools.cache
def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


def price_map_source(*, remote_price_map: bool = False) -> str:
    """Which price map prices calls: litellm's version and whether the map is the bundled
    one (``litellm-1.110.2:bundled``)."""
    global _PRICE_MAP_SOURCE
    if _imported() is None and uses_bundled_price_map(remote_price_map=remote_price_map):
        return f"litellm-{_litellm_version()}:bundled"  # the map litellm would load
    if _PRICE_MAP_SOURCE is None:
        litellm = load(remote_price_map=remote_price_map)
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
        _PRICE_MAP_SOURCE = f"litellm-{_litellm_version()}:{kind}"
    return _PRICE_MAP_SOURCE
