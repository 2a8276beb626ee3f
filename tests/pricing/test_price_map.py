"""Prices without importing litellm: the bundled price map read from litellm's own JSON file
is ``litellm.model_cost`` entry for entry, and prices every model exactly as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops import litellm_loader

# Prices every map entry with a usage that touches most billing dimensions; prints them as
# JSON with whether litellm was imported. Run here (litellm imported) and in a fresh
# process (not imported): the two must agree exactly.
PRICE_ALL = """
import json, sys
from llmops import litellm_loader
from llmops.pricing.prices import PriceBook
from llmops.pricing.usage import Usage

if sys.argv[1] == "import":
    litellm_loader.load()
book = PriceBook()
usage = Usage(prompt_tokens=250_000, completion_tokens=3_000, cached_tokens=1_000,
              cache_write_tokens=500, reasoning_tokens=700, web_search_requests=1)
names = sorted(litellm_loader.model_cost())
prices = {}
for name in names:
    price = book.price(name, usage)
    prices[name] = [price.cost_usd, price.status, price.source, list(price.notes),
                    price.priced_as]
print(json.dumps({"litellm": "litellm" in sys.modules, "prices": prices}))
"""


def _price_all(mode: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRICE_ALL, mode],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _json_models() -> dict:
    package = litellm_loader.package_dir()
    assert package is not None
    return json.loads((package / litellm_loader.BUNDLED_PRICE_MAP).read_text())


def test_the_bundled_map_is_litellms_model_cost_entry_for_entry() -> None:
    litellm = litellm_loader.load()
    assert litellm_loader.uses_bundled_price_map()
    bundled = litellm_loader.bundled_model_cost()
    assert bundled is not None
    assert set(bundled) == set(litellm.model_cost)
    for name, entry in litellm.model_cost.items():
        assert dict(bundled[name]) == dict(entry), name
    raw = _json_models()
    models = [name for name in raw if name != "fallback_generalizations"]
    assert len(models) > 1000
    for name in models:  # every model of the file, looked up as the PriceBook does
        assert litellm_loader.bundled_model_cost().get(name) == litellm.model_cost.get(name)
    aliases = [name for name in models if isinstance(raw[name].get("alias_of"), str)]
    for name in aliases:  # served as the entry they point at, priced like it
        assert "alias_of" not in bundled[name]
        assert bundled[name] == bundled[raw[name]["alias_of"]]


@pytest.mark.integration  # fresh processes: one that never imports litellm
def test_every_price_is_the_same_without_importing_litellm() -> None:
    without = _price_all("no-import")
    with_litellm = _price_all("import")
    assert without["litellm"] is False and with_litellm["litellm"] is True
    assert len(without["prices"]) > 1000
    assert without["prices"] == with_litellm["prices"]
    priced = [p for p in without["prices"].values() if p[0] is not None]
    assert len(priced) > 1000
    assert {p[2] for p in priced} == {f"litellm-{litellm_loader._litellm_version()}:bundled"}


@pytest.mark.integration  # a fresh process: the remote map is litellm's business
def test_the_remote_price_map_goes_through_litellm() -> None:
    code = (
        "import sys\n"
        "from llmops.pricing.prices import PriceBook\n"
        "from llmops.pricing.usage import Usage\n"
        "price = PriceBook(remote_price_map=True).price('gpt-4o-mini', Usage(10, 10))\n"
        "print('litellm' in sys.modules, price.status, price.source)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    imported, status, source = result.stdout.split()
    assert imported == "True" and status == "priced" and source.endswith(":remote")


@pytest.mark.parametrize(
    ("env", "remote", "bundled"),
    [
        ({}, False, True),  # llmops' default: the bundled map, reproducible prices
        ({}, True, False),  # remote_price_map: litellm fetches
        ({"LITELLM_LOCAL_MODEL_COST_MAP": "False"}, False, False),  # the user's own choice
        ({"LITELLM_LOCAL_MODEL_COST_MAP": "true"}, True, True),
        ({"LITELLM_OFFLINE_MODE": "true"}, True, True),  # litellm's offline mode: bundled
    ],
)
def test_which_map_follows_litellms_settings(
    env: dict[str, str], remote: bool, bundled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_OFFLINE_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert litellm_loader.uses_bundled_price_map(remote_price_map=remote) is bundled


@pytest.mark.integration  # a fresh process
def test_the_bundled_map_is_found_without_importing_litellm(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from llmops import litellm_loader\n"
        "cost = litellm_loader.model_cost()\n"
        "print('litellm' in sys.modules, cost['gpt-4o-mini']['input_cost_per_token'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    imported, rate = result.stdout.split()
    assert (
        imported == "False" and float(rate) == _json_models()["gpt-4o-mini"]["input_cost_per_token"]
    )
