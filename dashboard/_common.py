"""What every page of the dashboard shares: settings, the engine, the password gate, the sidebar
filters (mirrored in the URL query string), cached query calls and number formatting.

Every figure comes from :mod:`llmops.store.queries`; this module only caches and formats what
those functions return. Nothing here builds SQL or does arithmetic on call data.
Every table shows a missing value as :data:`DASH` (``placeholder=c.DASH``), as the
figures do; Streamlit would write "None".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time as _time
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import altair as alt
import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from llmops.config import Budget, Settings
from llmops.errors import DatabaseError, HistoryUnavailableError, LLMOpsError
from llmops.evals import history as eval_history
from llmops.money import DASH, usd
from llmops.prompts import PromptRegistry
from llmops.store import queries
from llmops.store.engine import check_schema, create_engine, display_url
from llmops.text import CONTROL, INVISIBLE, printable

TTL = 30  # seconds a query result is reused
TOP_KEYS = 10  # a split by user or tag shows the 10 that cost most, the rest as "(other)"
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
CUSTOM = "custom"
EARLIEST_DAY = date(1970, 1, 1)  # the earliest day a range may start (no call is older)
MAX_RANGE_DAYS = 3660  # the longest range (every day of a range is a row of a chart)
MAX_PARAM_CHARS = 200  # the longest value of a URL parameter that is used
MAX_FILTER_VALUES = 50  # the most values of one filter in a URL
MAX_PAGE = 10_000_000  # the highest page number a link may ask for
AUTH_KEY = "_llmops_auth"
URL_KEY = "_llmops_url"  # what this session last wrote to the query string, per parameter

# sidebar filter: (URL parameter and widget key, label, key of queries.filter_options)
FILTERS = (
    ("model", "Model", "models"),
    ("prompt", "Prompt", "prompts"),
    ("version", "Prompt version", "versions"),
    ("user", "User", "users"),
    ("status", "Status", "statuses"),
    ("source", "Source", "sources"),
)
# query parameters that belong to one page (the others are shared by every page)
PAGE_PARAMS = {
    "Overview": ("by",),
    "Calls": ("size", "sort", "page", "call"),
    "Evals": ("batch",),
}


# -- formatting -------------------------------------------------------------------------


def cost(value: float | None, status: str | None) -> str:
    """A call's cost: an unpriced call is shown as such, never as $0."""
    if status == "unpriced" or value is None:
        return "unpriced"
    return f"≈{usd(value)}" if status == "approximate" else usd(value)


def pct(value: float | None) -> str:
    """``12.3%`` from a ratio (0.123)."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:.1%}"


def change(value: float | None) -> str | None:
    """A relative change for a metric's delta: ``+12.3%``; None when unknown."""
    if value is None or math.isnan(value):
        return None
    return f"{value:+.1%}"


def ms(value: float | None) -> str:
    """``850 ms``; one decimal below 10 ms."""
    if value is None or math.isnan(value):
        return DASH
    if abs(value) < 10:
        return f"{value:.1f} ms"
    return f"{value:,.0f} ms"


def num(value: float | None, decimals: int = 0) -> str:
    """``12,345`` (or with decimals: ``1,234.5``)."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:,.{decimals}f}"


# A metric tile is about 150 px wide at six a row (a 1,440 px window): Streamlit cuts its
# value with an ellipsis past nine characters, eight on a smaller screen. Tiles show figures
# in at most seven, and their exact value in the tile's help.
_UNITS = ((1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T"))


def _compact(size: float) -> str:
    """``611.6k``, ``1.23M``, ``30.5B`` (``size`` of 1,000 or more): the first unit under
    which the figure, rounded, stays under 1,000; two decimals under 10, one above."""
    for scale, unit in _UNITS:
        value = size / scale
        text = f"{value:.{2 if value < 9.995 else 1}f}"
        if float(text) < 1000 or unit == _UNITS[-1][1]:
            return text + unit
    raise AssertionError("unreachable")


def short_usd(value: float | None) -> str:
    """An amount for a metric tile, seven characters at most: ``<$0.001`` for a fraction
    of a tenth of a cent, cents under $1,000 (``$987.65``, ``$0.0042``), whole dollars
    under $100,000 (``$21,005``), then ``$611.6k``, ``$1.23M``."""
    if value is not None and not math.isnan(value) and 0 < abs(value) < 0.001:
        return "<$0.001" if value > 0 else "-<$0.001"
    if value is None or math.isnan(value) or abs(value) < 999.995:
        return usd(value)
    sign = "-" if value < 0 else ""
    size = abs(value)
    return f"{sign}${size:,.0f}" if size < 99_999.5 else f"{sign}${_compact(size)}"


def short_num(value: float | None) -> str:
    """A count for a metric tile, seven characters at most: ``987,654``, then ``1.23M``,
    ``30.5B``, ``300.1B``."""
    if value is None or math.isnan(value) or abs(value) < 999_999.5:
        return num(value)
    return ("-" if value < 0 else "") + _compact(abs(value))


def short_ms(value: float | None) -> str:
    """A latency for a metric tile: ``850 ms``, and seconds from 10 s (``12.3 s``)."""
    if value is None or math.isnan(value) or abs(value) < 9_999.5:
        return ms(value)
    return f"{value / 1000:,.1f} s"


def usd_tile(
    column: Any, label: str, value: float | None, *, help: str | None = None, **kw: Any
) -> None:
    """``column.metric`` of an amount: ``short_usd``, the exact amount in its help."""
    _tile(column, label, short_usd(value), usd(value), help, **kw)


def num_tile(column: Any, label: str, value: float | None, *, help: str | None = None) -> None:
    """``column.metric`` of a count: ``short_num``, the exact count in its help."""
    _tile(column, label, short_num(value), num(value), help)


def ms_tile(column: Any, label: str, value: float | None, *, help: str | None = None) -> None:
    """``column.metric`` of a latency: ``short_ms``, the exact one in its help."""
    _tile(column, label, short_ms(value), ms(value), help)


def _tile(column: Any, label: str, shown: str, exact: str, help: str | None, **kw: Any) -> None:
    if shown != exact:
        help = f"Exactly {exact}." + (f" {help}" if help else "")
    column.metric(label, shown, help=help, **kw)


def spend_text(cost_usd: float, unpriced_calls: int) -> str:
    """An amount that says which calls it leaves out: ``$0.35 + 2 unpriced calls``, never a
    bare ``$0.00`` for calls without a price."""
    text = usd(cost_usd)
    return f"{text} + {plural(unpriced_calls, 'unpriced call')}" if unpriced_calls else text


def plural(count: int, noun: str) -> str:
    """``1 call``, ``2 calls``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def score(value: float | None) -> str:
    """An average feedback score: ``0.67``."""
    if value is None or math.isnan(value):
        return DASH
    return f"{value:.2f}"


# Series colours: no red (red means over budget), grey for "(other)". A key keeps its colour
# whatever the filters show with it (see key_colours).
ALERT_RED = "#d62728"
OTHER_GREY = "#9e9e9e"
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d",
)  # fmt: skip
STRONG = 8  # the first eight colours of the palette; the others are their pale versions


def key_colours(keys: Sequence[str], known: Sequence[str] = ()) -> alt.Scale:
    """A colour scale for ``keys`` in which a key's colour does not depend on what else is
    shown, so a model keeps its colour when filters change. The ``known`` keys (every model,
    prompt, user or source of the database: what the sidebar lists) take the palette's
    slots first, in order of a stable hash, a key whose slot is taken taking the next free
    one (a strong colour while one is free, then a pale one); other keys follow the same
    way. Past 16 keys colours repeat. ``(other)`` is grey."""
    taken: set[int] = set()
    slots: dict[str, int] = {}
    for key in [*sorted(set(known)), *sorted(set(keys) - set(known))]:
        if key == queries.OTHER or key in slots:
            continue
        start = zlib.crc32(key.encode()) % STRONG
        # the strong colours first (the pale ones only once those are taken)
        free = [(start + step) % STRONG for step in range(STRONG)]
        free += [STRONG + (start + step) % (len(PALETTE) - STRONG) for step in range(STRONG)]
        slot = next((s for s in free if s not in taken), start)
        taken.add(slot)
        slots[key] = slot
    domain = sorted(set(keys))
    return alt.Scale(
        domain=domain,
        range=[OTHER_GREY if k == queries.OTHER else PALETTE[slots[k]] for k in domain],
    )


def series_colour(
    field: str, title: str, keys: Sequence[str], known: Sequence[str] = (), bottom: bool = True
) -> alt.Color:
    """A chart's colour encoding by series: stable colours (:func:`key_colours`) and a
    legend that shows whole names (below the chart unless ``bottom`` is False)."""
    legend = (
        alt.Legend(labelLimit=0, orient="bottom", columns=2) if bottom else alt.Legend(labelLimit=0)
    )
    return alt.Color(f"{field}:N", title=title, scale=key_colours(keys, known), legend=legend)


# Charts draw as SVG rather than Vega's default canvas: crisp at any zoom and in print, and
# their tick labels and legends are text, which a browser (and a test) can read.
SVG = {"embedOptions": {"renderer": "svg"}}


def altair_chart(chart: alt.TopLevelMixin, **kwargs: Any) -> Any:
    """``st.altair_chart`` of ``chart`` drawn as SVG; returns what Streamlit returns (the
    selection event when ``on_select`` is given)."""
    return st.altair_chart(chart.properties(usermeta=SVG), **kwargs)


def known_keys(view: View, by: str) -> list[str]:
    """Every key of a grouping the database knows (the sidebar's choices), for colours."""
    field = {"model": "models", "prompt": "prompts", "user": "users", "source": "sources"}
    return filter_options(view.url).get(field.get(by, ""), [])


# what makes inline markdown in Streamlit (links, images, emphasis, code, HTML, headings
# and tables, LaTeX, :color[...] and :icon: directives, bare-URL autolinks)
_PUNCTUATION = re.compile(r"([\\`*_\[\]()!<>#|~$:.&])")  # &: "&rlm;" is a character


# what reorders or hides text (U+202E, zero-width) and control characters (ESC, ...)
_INVISIBLE = re.compile("[" + "".join(map(chr, sorted(INVISIBLE | set(CONTROL)))) + "]")
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def plain(value: object) -> str:
    """A value from the data (a user id, tag, model or feedback name: what apps and their
    end users send) as literal text inside Streamlit markdown: the characters that make
    markup escaped, so that ``[x](https://...)``, ``![](...)``, ``:red[...]``, ``$...$``
    and bare URLs show as typed instead of becoming links, images or styles (a word joiner
    keeps ``https://`` and ``www.`` from being linked); line breaks as spaces, characters
    that reorder or hide text (U+202E, zero-width) and control characters left out."""
    text = _INVISIBLE.sub("", " ".join(str(value).split()))
    text = _AUTOLINK.sub(lambda m: m.group(1)[0] + "\u2060" + m.group(1)[1:], text)
    return _PUNCTUATION.sub(r"\\\1", text)


_BREAKS = str.maketrans("\n\r\t", "   ")


def visible(value: Any) -> Any:
    """A value from the data as a table, a chart or a JSON view shows it: in every text (of
    a list or mapping too), line breaks and tabs as spaces, other control characters and
    the characters that reorder or hide text (U+202E, zero-width) escaped as ``\\u202e``, so
    that a user id cannot show as another one; other values as they are (numbers stay
    numbers)."""
    if isinstance(value, str):
        return printable(value.translate(_BREAKS))
    if isinstance(value, Mapping):
        return {visible(k): visible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [visible(v) for v in value]
    return value


def table(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows (or columns: name -> {row: value}) for ``st.dataframe`` or a chart, every value
    :func:`visible`; ``columns`` as ``pd.DataFrame`` takes them (an empty frame keeps
    them)."""
    if isinstance(rows, Mapping):
        return pd.DataFrame(visible(rows), columns=columns)
    return pd.DataFrame([{k: visible(v) for k, v in row.items()} for row in rows], columns=columns)


def scores(feedback: Sequence[queries.FeedbackScore]) -> str:
    """Feedback per name, each on its own scale: ``thumbs 0.67 (12) · stars 4.20 (5)``
    (markdown: the names escaped)."""
    if not feedback:
        return DASH
    return " · ".join(f"{plain(f.name)} {score(f.average)} ({f.count:,})" for f in feedback)


def when(value: datetime | date | None) -> str:
    """A UTC timestamp as ``2026-11-27 09:02:33``."""
    if value is None:
        return DASH
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def short(version: str | None, length: int = 12) -> str:
    return version[:length] if version else DASH


# -- settings, engine, password -----------------------------------------------------------


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except LLMOpsError as exc:
        st.error(f"Configuration error: {exc}")
        st.stop()


@st.cache_resource(show_spinner=False, on_release=lambda engine: engine.dispose())
def _engine(url: str) -> Engine:
    engine = create_engine(url)
    check_schema(engine, create=True)
    return engine


def engine(url: str) -> Engine:
    """The cached engine of ``url``; a schema or connection problem stops the page."""
    try:
        return _engine(url)
    except DatabaseError as exc:
        st.error(f"Cannot open the database {display_url(url)}: {exc}")
    except LLMOpsError as exc:
        st.error(str(exc))
    st.stop()


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


# -- the password gate's back-off ----------------------------------------------------------
# After each wrong password the sign-in waits, longer each time (0.5 s doubling up to 8 s),
# counted per session and per client address across the sessions of this process. Attempts
# from one client address are serialized, so that opening many sessions does not help.

BACKOFF_FIRST = 0.5  # seconds after the first wrong password
BACKOFF_MAX = 8.0
FAILURES_KEY = "_llmops_failures"
_sleep = _time.sleep  # tests replace it to record the delays instead of sleeping


@dataclass
class _Client:
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_CLIENTS: dict[str, _Client] = {}
_CLIENTS_LOCK = threading.Lock()
_MAX_CLIENTS = 10_000


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th wrong password in a row."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_FIRST * 2 ** min(failures - 1, 16), BACKOFF_MAX)


def _client() -> _Client:
    try:
        address = st.context.ip_address
    except Exception:  # no request context (a bare run)
        address = None
    if not isinstance(address, str) or not address:
        address = "unknown"  # every client without an address shares one count
    with _CLIENTS_LOCK:
        if address not in _CLIENTS and len(_CLIENTS) >= _MAX_CLIENTS:
            idle = [key for key, c in _CLIENTS.items() if not c.failures and not c.lock.locked()]
            for key in idle or list(_CLIENTS)[: _MAX_CLIENTS // 2]:
                _CLIENTS.pop(key, None)
        return _CLIENTS.setdefault(address, _Client())


def reset_sign_in_backoff() -> None:
    """Forget every client's wrong passwords (for tests)."""
    with _CLIENTS_LOCK:
        _CLIENTS.clear()


def check_password(entered: str, password: str) -> tuple[bool, float]:
    """Compare a sign-in attempt with the password; return (right, seconds waited).

    A wrong password waits :func:`backoff` of the failures so far (this session's or this
    client's, whichever is more) before answering; a right one resets both counts.
    """
    client = _client()
    with client.lock:
        if hmac.compare_digest(entered.encode(), password.encode()):
            client.failures = 0
            st.session_state[FAILURES_KEY] = 0
            return True, 0.0
        client.failures += 1
        session = int(st.session_state.get(FAILURES_KEY) or 0) + 1
        st.session_state[FAILURES_KEY] = session
        delay = backoff(max(client.failures, session))
        _sleep(delay)
        return False, delay


def signed_in(settings: Settings) -> bool:
    """True when no password is set, or this session entered the current one."""
    password = settings.dashboard_password
    if not password:
        return True
    entered = st.session_state.get(AUTH_KEY)
    return isinstance(entered, str) and hmac.compare_digest(entered, _digest(password))


def sign_in_form(settings: Settings) -> None:
    """The password form (the only thing shown until the right password is entered)."""
    password = settings.dashboard_password or ""
    st.title("llmops")
    with st.form("sign_in"):
        entered = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        right, waited = check_password(entered or "", password)
        if right:
            st.session_state[AUTH_KEY] = _digest(password)
            st.rerun()
        st.error("Wrong password.")
        st.caption(
            f"Each wrong password makes the next answer slower (this one waited {waited:g} s, "
            f"up to {BACKOFF_MAX:g} s)."
        )


# -- URL query string <-> widgets ---------------------------------------------------------


def _written() -> dict[str, Any]:
    return st.session_state.setdefault(URL_KEY, {})


def url_value(key: str) -> str | None:
    """The URL's value of ``key`` when it is there and this session did not write it itself
    (a shared link, or an edited address): the caller then applies it to its widget."""
    if key not in st.query_params:
        return None
    raw = st.query_params.get(key)
    return raw if raw != _written().get(key) else None


def url_values(key: str) -> list[str] | None:
    """Like :func:`url_value`, for a parameter that may repeat (``?model=a&model=b``)."""
    if key not in st.query_params:
        return None
    raw = st.query_params.get_all(key)
    return raw if raw != _written().get(key) else None


def publish(key: str, value: str | list[str] | None) -> None:
    """Write a widget's value to the URL (an empty value removes the parameter)."""
    if value in (None, "", []):
        st.query_params.pop(key, None)
        _written().pop(key, None)
        return
    st.query_params[key] = value
    _written()[key] = list(value) if isinstance(value, list) else value


def link_warning(message: str) -> None:
    """Say that part of the link was ignored or changed (never echoing the raw value, which
    anyone can put in a link, into rendered Markdown)."""
    st.warning(message, icon=":material/link_off:")


def url_int(key: str, low: int, high: int) -> int | None:
    """The URL's whole-number parameter ``key`` when it is new (see :func:`url_value`):
    clamped to ``low..high``, or None with a warning when it is not a number."""
    raw = url_value(key)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 30):
        link_warning(f"Ignored `{key}` in the link: not a whole number.")
        return None
    value = int(text)
    if not low <= value <= high:
        clamped = min(max(value, low), high)
        link_warning(
            f"`{key}` in the link is out of range ({low:,} to {high:,}): using {clamped:,}."
        )
        return clamped
    return value


def is_call_id(value: str) -> bool:
    """A call id is a UUID (``result.call_id``)."""
    try:
        return len(value) == 36 and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def drop_params(keys: tuple[str, ...]) -> None:
    for key in keys:
        st.query_params.pop(key, None)
        _written().pop(key, None)


def keep_page_params(title: str) -> None:
    """Remove the parameters of the other pages from the URL."""
    for page, keys in PAGE_PARAMS.items():
        if page != title:
            drop_params(keys)


def bound_choice(key: str, options: list[Any], default: Any, parse: Any = str) -> None:
    """Before a keyed single-choice widget: take its value from the URL, else the default."""
    raw = url_value(key)
    if raw is not None:
        try:
            value = parse(raw) if len(raw) <= MAX_PARAM_CHARS else None
        except (ValueError, OverflowError):
            value = None
        if value in options:
            st.session_state[key] = value
        else:
            link_warning(f"Ignored `{key}` in the link: not one of the choices.")
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


# -- the view: date range and filters -----------------------------------------------------


@dataclass(frozen=True)
class View:
    """What the sidebar selected: the database, the settings, the range and the filters."""

    url: str
    settings: Settings
    key: queries.Filters  # hashable: the cache key of every query
    first_day: date
    last_day: date
    label: str

    @property
    def filtered(self) -> bool:
        k = self.key
        return any((k.models, k.prompts, k.versions, k.users, k.statuses, k.sources))


def days(view: View) -> list[str]:
    """Every day of the view's range, as the charts' axes write them."""
    count = (view.last_day - view.first_day).days + 1
    return [(view.first_day + timedelta(days=i)).isoformat() for i in range(count)]


def _parse_day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw and len(raw) <= 32 else None
    except ValueError:
        return None


def clamp_range(first: date, last: date, today: date) -> tuple[date, date]:
    """A date range the pages can show: from 1970-01-01 to a year from now, at most
    :data:`MAX_RANGE_DAYS` days (the end is kept, the start moved)."""
    first, last = min(first, last), max(first, last)
    latest = today + timedelta(days=366)
    first, last = max(first, EARLIEST_DAY), min(max(last, EARLIEST_DAY), latest)
    first = min(first, last)
    if (last - first).days >= MAX_RANGE_DAYS:
        first = last - timedelta(days=MAX_RANGE_DAYS - 1)
    return first, last


def _range_from_url(today: date) -> None:
    """Apply ``?days=N`` or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` from the URL to the widgets;
    a malformed or absurd range is ignored or clamped, with a warning."""
    first, last = url_value("from"), url_value("to")
    if first is not None or last is not None:
        start = _parse_day(st.query_params.get("from"))
        end = _parse_day(st.query_params.get("to"))
        if start and end:
            picked = clamp_range(start, end, today)
            if picked != (min(start, end), max(start, end)):
                link_warning(
                    f"The link's date range was clamped to {picked[0]} to {picked[1]} "
                    f"(from {EARLIEST_DAY}, at most {MAX_RANGE_DAYS:,} days)."
                )
            st.session_state["days"] = CUSTOM
            st.session_state["range"] = picked
        else:
            link_warning("Ignored the link's date range: `from` and `to` must be YYYY-MM-DD.")
    days = url_value("days")
    if days is not None:
        value: Any = CUSTOM if days == CUSTOM else None
        if days.isascii() and days.isdigit() and len(days) <= 4:
            value = int(days)
        if value in (*PRESETS, CUSTOM):
            st.session_state["days"] = value
        elif isinstance(value, int) and 1 <= value <= MAX_RANGE_DAYS:
            # any number of days the CLI takes (`--days`): the last N days, as a custom range
            st.session_state["days"] = CUSTOM
            st.session_state["range"] = (today - timedelta(days=value - 1), today)
        else:
            link_warning(
                f"Ignored `days` in the link: expected a whole number of days from 1 to "
                f"{MAX_RANGE_DAYS:,}."
            )
    current = st.session_state.get("days")
    st.session_state["days"] = current if current in (*PRESETS, CUSTOM) else DEFAULT_DAYS


def _preset_label(value: Any) -> str:
    return "Custom range" if value == CUSTOM else f"Last {value} days"


def sidebar(settings: Settings, applies: bool = True) -> View:
    """The date range and filters, read from and written to the URL; returns the view.

    Each widget's value is handed to it through ``st.session_state`` on every run: a widget's
    identity includes the page that renders it, so the values would otherwise not follow
    from page to page.
    """
    url = settings.dashboard_url  # a read replica, when one is set
    engine(url)
    options = filter_options(url)
    today = datetime.now(UTC).date()
    _range_from_url(today)
    # On a page they do not apply to, the range and filters fold away (they stay rendered:
    # a widget not rendered in a run loses its value, and the other pages need them).
    sidebar = (
        st.sidebar
        if applies
        else st.sidebar.expander("Date range and filters (not used on this page)", expanded=False)
    )
    days = sidebar.selectbox(
        "Date range", [*PRESETS, CUSTOM], format_func=_preset_label, key="days"
    )
    if days == CUSTOM:
        picked = st.session_state.get("range")
        if not (isinstance(picked, tuple | list) and len(picked) in (1, 2)):
            picked = (today - timedelta(days=DEFAULT_DAYS - 1), today)
        st.session_state["range"] = tuple(picked)
        picked = sidebar.date_input("From - to (UTC)", key="range") or ()
        first = picked[0] if len(picked) > 0 else today
        last = picked[1] if len(picked) > 1 else first
        if clamp_range(first, last, today) != (first, last):
            first, last = clamp_range(first, last, today)
            st.warning(
                f"Showing {first} to {last}: a range starts from {EARLIEST_DAY} at the "
                f"earliest and spans at most {MAX_RANGE_DAYS:,} days.",
                icon=":material/date_range:",
            )
        label = f"{first.isoformat()} to {last.isoformat()}"
        publish("from", first.isoformat())
        publish("to", last.isoformat())
        publish("days", None)
    else:
        first, last = today - timedelta(days=int(days) - 1), today
        label = f"last {days} days"
        publish("days", str(days))
        drop_params(("from", "to"))
    chosen: dict[str, tuple[str, ...]] = {}
    for key, name, option_key in FILTERS:
        values = url_values(key)
        if values is not None and (
            len(values) > MAX_FILTER_VALUES or any(len(v) > MAX_PARAM_CHARS for v in values)
        ):
            link_warning(
                f"Ignored `{key}` in the link: at most {MAX_FILTER_VALUES} values of at most "
                f"{MAX_PARAM_CHARS} characters."
            )
            values = None
        if values is None:
            values = st.session_state.get(key) or []
        selected = [str(v) for v in dict.fromkeys(values)]
        st.session_state[key] = selected
        choices = sorted(set(options.get(option_key, [])) | set(selected))
        shown = _version_label(url) if key == "version" else printable
        picked_values = sidebar.multiselect(
            name, choices, key=key, placeholder="All", format_func=shown
        )
        chosen[key] = tuple(picked_values)
        publish(key, list(picked_values))
    key = queries.Filters.days(
        first,
        last,
        models=chosen["model"],
        prompts=chosen["prompt"],
        versions=chosen["version"],
        users=chosen["user"],
        statuses=chosen["status"],
        sources=chosen["source"],
    )
    sidebar = st.sidebar
    sidebar.divider()
    if settings.dashboard_password:
        if sidebar.button("Sign out", key="sign_out"):
            st.session_state.pop(AUTH_KEY, None)
            st.rerun()
    else:
        sidebar.caption(
            ":material/lock_open: No password is set (LLMOPS_DASHBOARD_PASSWORD): this "
            "dashboard is open to anyone who can reach it."
        )
    sidebar.caption(f"Database: `{display_url(url)}`  \nTimes and days are UTC.")
    if sidebar.button("Refresh data", key="refresh"):
        st.cache_data.clear()
    return View(url, settings, key, first, last, label)


def selected(event: Any, name: str) -> list[Any]:
    """What a chart's or a table's selection holds (``rows`` of a table, a chart's named
    point selection): [] when nothing is selected."""
    selection = event.get("selection") if isinstance(event, dict) else None
    found = selection.get(name) if isinstance(selection, dict) else None
    return list(found) if isinstance(found, list) else []


# the sidebar filter a split's key selects (tags and keys have none: the day only)
DRILL_FILTERS = {"model": "model", "prompt": "prompt", "user": "user", "source": "source"}


def drill_down(view: View, day: str, by: str | None = None, key: Any = None) -> dict[str, Any]:
    """The Calls page's query string for one day (and one model, prompt, user or source of
    a split) within the current filters: where a click on a bar or a row leads."""
    params: dict[str, Any] = {"from": day, "to": day}
    k = view.key
    current = {"model": k.models, "prompt": k.prompts, "version": k.versions, "user": k.users,
               "status": k.statuses, "source": k.sources}  # fmt: skip
    params.update({name: list(values) for name, values in current.items() if values})
    name = DRILL_FILTERS.get(by or "")
    if name and isinstance(key, str) and key not in (queries.OTHER, "(none)"):
        params[name] = [key]
    return params


def _version_label(url: str) -> Any:
    """A version filter's choice as ``prompt@version`` (the filter keeps the bare id)."""
    names = version_prompts(url)
    return lambda version: printable(f"{names[version]}@{version}" if version in names else version)


PAGES_DIR = Path(__file__).resolve().parent / "pages"
_ENTRY = {"ran": False}  # has app.py run in this process (so st.navigation is in charge)?


def navigation(position: Literal["sidebar", "hidden"] = "sidebar") -> Any:
    """The pages, registered with ``st.navigation``; returns the page to run. Each page
    starts with :func:`page_view`, which shows only the password form until it is entered."""
    _ENTRY["ran"] = True
    return st.navigation(
        [
            st.Page(
                PAGES_DIR / "overview.py",
                title="Overview",
                icon=":material/monitoring:",
                default=True,
            ),
            st.Page(PAGES_DIR / "prompts.py", title="Prompts", icon=":material/description:"),
            st.Page(PAGES_DIR / "evals.py", title="Evals", icon=":material/fact_check:"),
            st.Page(PAGES_DIR / "calls.py", title="Calls", icon=":material/list:"),
            st.Page(PAGES_DIR / "feedback.py", title="Feedback", icon=":material/thumbs_up_down:"),
        ],
        position=position,
    )


def page_view(title: str, filters: bool = True) -> View:
    """Every page starts here: the password gate, the sidebar, and the URL without the other
    pages' parameters. ``filters=False``: the page does not use the sidebar's range and
    filters, which fold away.

    The page does this itself rather than ``app.py``, because Streamlit may run a page file
    without ``app.py``: when a ``pages/`` folder sits next to the entry script and
    ``st.navigation`` has not run yet in the process (its first request, if it asks for a
    page's URL), and in AppTest after ``switch_page``.
    """
    settings = load_settings()
    locked = not signed_in(settings)
    if not _ENTRY["ran"]:
        # Streamlit ran this page file without app.py, listing the pages/ folder as in its
        # old multipage mode: register the real pages (from now on app.py runs first) and
        # start again that way, so that widgets keep one identity from the first render.
        navigation("hidden" if locked else "sidebar")
        st.rerun()
    if locked:
        sign_in_form(settings)
        st.stop()
    view = sidebar(settings, applies=filters)
    keep_page_params(title)
    return view


def no_data(message: str = "No calls in this range yet.") -> None:
    st.info(message, icon=":material/info:")


# -- cached queries -------------------------------------------------------------------------


@st.cache_data(ttl=TTL, show_spinner=False)
def filter_options(url: str) -> dict[str, list[str]]:
    return queries.filter_options(_engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _compare_versions(
    url: str, key: queries.Filters, prompt_name: str, versions: tuple[str, ...]
) -> list[queries.VersionSide]:
    return queries.compare_versions(_engine(url), key, prompt_name, versions)


def compare_versions(
    view: View, prompt_name: str, versions: tuple[str, ...]
) -> list[queries.VersionSide]:
    return _compare_versions(view.url, view.key, prompt_name, versions)


@st.cache_data(ttl=TTL, show_spinner=False)
def version_prompts(url: str) -> dict[str, str]:
    return queries.version_prompts(_engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _spend_periods(url: str) -> list[queries.Period]:
    return queries.spend_periods(_engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _overview(url: str, key: queries.Filters) -> queries.Overview:
    return queries.overview(_engine(url), key)


@st.cache_data(ttl=TTL, show_spinner=False)
def _daily_spend(url: str, key: queries.Filters, by: str) -> list[queries.SpendRow]:
    return queries.daily_spend(_engine(url), key, by=by, top=TOP_KEYS)


@st.cache_data(ttl=TTL, show_spinner=False)
def _daily_totals(url: str, key: queries.Filters, budget: float | None) -> list[queries.DayTotal]:
    return queries.daily_totals(_engine(url), key, budget)


@st.cache_data(ttl=TTL, show_spinner=False)
def _prompt_versions(url: str, key: queries.Filters) -> list[queries.VersionStats]:
    return queries.prompt_versions(_engine(url), key)


@st.cache_data(ttl=TTL, show_spinner=False)
def _eval_runs(url: str) -> list[queries.EvalRunRow]:
    return queries.eval_runs(_engine(url))


@st.cache_data(ttl=TTL, show_spinner=False)
def _eval_comparisons(url: str, batch_id: str) -> list[eval_history.BatchComparison]:
    return eval_history.comparisons(_engine(url), batch_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def _calls_page(
    url: str, key: queries.Filters, limit: int, offset: int, order: str
) -> tuple[list[dict[str, Any]], int]:
    return queries.calls_page(_engine(url), key, limit=limit, offset=offset, order=order)


@st.cache_data(ttl=TTL, show_spinner=False)
def _call_detail(url: str, call_id: str) -> dict[str, Any] | None:
    return queries.call_detail(_engine(url), call_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def _feedback_distribution(url: str, key: queries.Filters) -> list[queries.ScoreCount]:
    return queries.feedback_distribution(_engine(url), key)


@st.cache_data(ttl=TTL, show_spinner=False)
def _feedback_trend(url: str, key: queries.Filters) -> list[queries.FeedbackDay]:
    return queries.feedback_trend(_engine(url), key)


@st.cache_data(ttl=TTL, show_spinner=False)
def _feedback_comments(url: str, key: queries.Filters) -> list[dict[str, Any]]:
    return queries.feedback_comments(_engine(url), key)


def spend_periods(view: View) -> list[queries.Period]:
    return _spend_periods(view.url)


@st.cache_data(ttl=TTL, show_spinner=False)
def _budget_status(url: str, budgets: str) -> list[queries.BudgetStatus]:
    declared = [Budget.model_validate(b) for b in json.loads(budgets)]
    return queries.budget_status(_engine(url), declared)


def budget_status(view: View) -> list[queries.BudgetStatus]:
    """The budgets of the config file in their current windows (cached by their text)."""
    declared = json.dumps([b.model_dump() for b in view.settings.budgets], sort_keys=True)
    return _budget_status(view.url, declared)


def month_budget(view: View) -> queries.MonthBudget:
    return queries.MonthBudget.of(
        spend_periods(view), view.settings.monthly_budget_usd, datetime.now(UTC)
    )


def overview(view: View) -> queries.Overview:
    return _overview(view.url, view.key)


def daily_spend(view: View, by: str) -> list[queries.SpendRow]:
    return _daily_spend(view.url, view.key, by)


def daily_budget(view: View) -> float | None:
    """The daily budget a chart of ``view`` is compared with: none when filters select a
    part of the calls, since the budget is for all of them."""
    return None if view.filtered else view.settings.daily_budget_usd


def daily_totals(view: View) -> list[queries.DayTotal]:
    return _daily_totals(view.url, view.key, daily_budget(view))


def prompt_versions(view: View) -> list[queries.VersionStats]:
    return _prompt_versions(view.url, view.key)


def eval_runs(view: View) -> list[queries.EvalRunRow]:
    return _eval_runs(view.url)


def eval_comparisons(view: View, batch_id: str) -> list[eval_history.BatchComparison]:
    return _eval_comparisons(view.url, batch_id)


def calls_page(
    view: View, limit: int, offset: int, order: str = "newest"
) -> tuple[list[dict[str, Any]], int]:
    return _calls_page(view.url, view.key, limit, offset, order)


def call_detail(view: View, call_id: str) -> dict[str, Any] | None:
    return _call_detail(view.url, call_id)


def feedback_distribution(view: View) -> list[queries.ScoreCount]:
    return _feedback_distribution(view.url, view.key)


def feedback_trend(view: View) -> list[queries.FeedbackDay]:
    return _feedback_trend(view.url, view.key)


def feedback_comments(view: View) -> list[dict[str, Any]]:
    return _feedback_comments(view.url, view.key)


# -- the prompt registry (files and git, not the database) ---------------------------------


def registry(view: View) -> PromptRegistry:
    return PromptRegistry(view.settings.prompts_dir)


@st.cache_data(ttl=TTL, show_spinner=False)
def labels(prompts_dir: str) -> dict[tuple[str, str], list[str]]:
    """(prompt, version) -> the labels pointing at it, from ``labels.yaml``."""
    found = PromptRegistry(prompts_dir).labels()
    return {
        (name, version): found.labels_for(name, version)
        for name, versions in found.root.items()
        for version in set(versions.values())
    }


@st.cache_data(ttl=TTL, show_spinner=False)
def prompt_names(prompts_dir: str) -> list[str]:
    return PromptRegistry(prompts_dir).names()


@st.cache_data(ttl=TTL, show_spinner=False)
def history(prompts_dir: str, name: str) -> list[tuple[str, str, datetime, str]]:
    """(version, commit, date, subject) of every commit that changed ``name``, newest first;
    empty without git."""
    try:
        versions = PromptRegistry(prompts_dir).history(name)
    except HistoryUnavailableError:
        return []
    return [
        (v.version, v.commit, utc(v.date), v.subject)
        for v in versions
        if v.version is not None and v.changed
    ]


def utc(value: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@st.cache_data(ttl=TTL, show_spinner=False)
def prompt_source(prompts_dir: str, ref: str) -> str:
    """The file text of a prompt reference (``name`` or ``name@version``)."""
    return PromptRegistry(prompts_dir).load(ref).source
