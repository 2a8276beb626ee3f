"""Values that apps and their end users choose (model names through `llmops serve`, user
ids, feedback names, a link's call id) show as typed on the dashboard: as markdown they
made links and images (the browser fetched an attacker's URL when a lead opened a page)."""

from __future__ import annotations

import json
import re
from typing import Any

from llmops.testing import Reply
from tests.dashboard.conftest import charts, goto, open_app, table, texts

MODEL = "[click](https://evil.example/m)"
FEEDBACK = "![t](http://127.0.0.1:9/track.png)"
LIVE = re.compile(r"(?<!\\)\]\((?:https?|javascript):|(?<!\\):red\[")  # markdown that acts


def rendered(at: Any) -> list[str]:
    return [
        *texts(at.warning), *texts(at.error), *texts(at.markdown), *texts(at.caption),
        *(m.label for m in at.metric), *(m.help or "" for m in at.metric),
    ]  # fmt: skip


def test_hostile_names_show_as_text(dashboard_env, make_gateway, server) -> None:
    gw = make_gateway()
    server.enqueue(Reply(text="ok", prompt_tokens=10, completion_tokens=2))
    call = gw.complete(
        model=f"openai/{MODEL}", messages=[{"role": "user", "content": "hi"}],
        api_base=server.base_url, api_key="sk-test", num_retries=0,
    ).call_id  # fmt: skip
    gw.feedback(call, 1, name=FEEDBACK)
    gw.flush()
    at = open_app()
    shown = rendered(at)
    assert any("no known price" in text and "click" in text for text in shown)
    assert any("track" in text for text in shown)  # the feedback tile
    assert not [text for text in shown if LIVE.search(text)]
    goto(at, "feedback")
    assert not [text for text in rendered(at) if LIVE.search(text)]
    linked = open_app({"call": ":red[x](https://evil.example/c)"})
    goto(linked, "calls")
    assert not [text for text in rendered(linked) if LIVE.search(text)]


def test_a_feedback_name_on_two_lines_keeps_its_chart(seeded, make_gateway) -> None:
    """A line break in an axis title stopped Vega drawing the chart (Expression parse
    error): the trend's title is the name on one line."""
    call = next(c for c in seeded.calls if c.prompt_name and c.status == "ok")
    gw = make_gateway()
    gw.feedback(call.id, 1, name="two\n\n## lines")
    gw.flush()
    at = goto(open_app(), "feedback")
    titles = json.dumps([spec.get("encoding") for spec in charts(at)])
    assert "Average two ## lines" in titles and "two\\n" not in titles


def test_text_that_reorders_or_hides_itself_shows_escaped_in_tables(
    dashboard_env, make_gateway, server
) -> None:
    """U+202E shows "user-evil\u202eyppah" as a user whose name ends "happy", and a zero-width
    space makes two ids look alike: tables, filter choices and the call's JSON showed them
    as they came (only markdown left them out)."""
    gw = make_gateway()
    user, tag = "user-evil\u202eyppah", "w\u200beb"
    server.enqueue(Reply(text="ok", prompt_tokens=10, completion_tokens=2))
    call = gw.complete(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user=user,
        tags=[tag], api_base=server.base_url, api_key="sk-test", num_retries=0,
    ).call_id  # fmt: skip
    gw.feedback(call, 1, name="thumbs\u2066\x1b[31m", user=user)
    gw.flush()
    at = goto(open_app(), "calls")
    (row,) = table(at, "User")
    assert row["User"] == "user-evil\\u202eyppah"
    users = next(m for m in at.multiselect if m.label == "User")
    assert [users.format_func(o) for o in users.options] == ["user-evil\\u202eyppah"]
    at.query_params["call"] = call
    at.run()
    shown = json.dumps([json.loads(j.value) for j in at.json])
    assert "user-evil\\\\u202eyppah" in shown and "w\\\\u200beb" in shown
    assert "\\u202e" not in shown.replace("\\\\u202e", "")  # no raw U+202E in the JSON
    (feedback,) = table(at, "Score")
    assert feedback["User"] == "user-evil\\u202eyppah"
    assert feedback["Name"] == "thumbs\\u2066\\x1b[31m"
    # the split by user: the legend and tooltip show the label, a click filters on the id
    at = open_app({"by": "user"})
    (chart,) = [c for c in at.get("vega_lite_chart") if '"field": "label"' in c.proto.spec]
    bars = [row for data in chart.proto.datasets for row in _rows(data.data.data)]
    assert {(row["label"], row["key"]) for row in bars if "label" in row} == {
        ("user-evil\\u202eyppah", user)
    }
    assert all(f["field"] != "key" for f in _fields(json.loads(chart.proto.spec)))
    shown = [*(m.label for m in at.metric), *(m.help or "" for m in at.metric)]
    assert any("thumbs" in text for text in shown)
    assert not [text for text in shown if "\x1b" in text or "\u2066" in text]


def _fields(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The encodings (colour, tooltips) of a layered chart that name a field."""
    found = []
    for layer in [spec, *spec.get("layer", [])]:
        for channel in (layer.get("encoding") or {}).values():
            for item in channel if isinstance(channel, list) else [channel]:
                if isinstance(item, dict) and "field" in item:
                    found.append(item)
    return found


def _rows(arrow: bytes) -> list[dict[str, Any]]:
    """A chart's dataset (Arrow, as Streamlit sends it) as rows."""
    import io

    import pyarrow as pa

    return pa.ipc.open_stream(io.BytesIO(arrow)).read_all().to_pylist()
