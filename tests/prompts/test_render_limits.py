"""Rendering is bounded: output size, intermediate sizes, ranges, loops, time, recursion.

The bombs run in a child process, one fork per bomb, each with a 2 GB address-space
limit (``RLIMIT_AS``) and a 30 s alarm. Inside the fork the bomb is compiled and
rendered, and the fork reports what it raised, how long it took and its peak
resident memory (``ru_maxrss``). A bomb passes when it raises TemplateLimitError
(or SandboxViolationError where the sandbox already blocks it), did not run out of
memory on the way (the 2 GB cap would turn that into a MemoryError: we check the
message and the peak memory) and finished well within the alarm. This keeps a
regression from taking gigabytes of the test machine, measures memory without
tracemalloc's overhead and without counting pytest's own memory, and only needs a
generous bound on time, so a busy 2-core machine cannot make it flaky.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmops.errors import RenderError, SandboxViolationError, TemplateLimitError
from llmops.prompts._render import (
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE_ITEMS,
    RenderLimits,
    compile_template,
    render_template,
)
from tests.conftest import PromptRepo

SIZE, RANGE, LOOPS, TIME, RECURSION = (
    "output_size",
    "range_size",
    "loop_iterations",
    "time",
    "recursion",
)
SANDBOX = "sandbox"

# id -> (template, the limits it may hit). Each allocates gigabytes or runs for
# minutes (or forever) in a plain Jinja2 sandbox. Where a bomb does some real work
# before it reaches a size limit, a busy machine may reach the 1 s limit first.
BOMBS: dict[str, tuple[str, set[str]]] = {
    "str-repeat": ("{{ 'a' * 10**10 }}", {SIZE}),
    "str-repeat-left": ("{{ 10**9 * 'a' }}", {SIZE}),
    "list-repeat": ("{{ [1] * 10**9 }}", {SIZE}),
    "huge-int-pow": ("{{ 2 ** (10 ** 10) }}", {SIZE}),
    "huge-int-mul": ("{% set x = 10 ** 4000 %}{{ x * x * x }}", {SIZE}),
    "center-filter": ("{{ 'x'|center(10**10) }}", {SIZE}),
    "indent-filter": ("{{ 'a'|indent(10**9, true) }}", {SIZE}),
    "replace-chain": ("{{ 'ab'|replace('a', 'a' * 10**6)|replace('a', 'a' * 10**6) }}", {SIZE}),
    "replace-empty": ("{{ ('a' * 99999)|replace('', 'x' * 99999) }}", {SIZE}),
    "str-join-method": ("{{ ','.join(['x' * 99999] * 9 + ['x' * 99999] * 9) }}", {SIZE}),
    "join-filter": ("{% set x = 'x' * 999999 %}{{ [x, x, x]|join(',') }}", {SIZE}),
    "concat-doubling": (
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        {SIZE},
    ),
    "set-block-doubling": (
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}"
        "{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}",
        {SIZE},
    ),
    "list-plus-doubling": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
        {SIZE},
    ),
    "shared-ref-doubling": (
        "{% set ns = namespace(x=1) %}{% for i in range(64) %}"
        "{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
        {SIZE},
    ),
    "shared-refs-printed": ("{% set x = 'a' * 999999 %}{{ {}.fromkeys(range(9999), x) }}", {SIZE}),
    "shared-refs-tojson": (
        "{% set x = 'a' * 999999 %}{{ {}.fromkeys(range(9999), x)|tojson }}",
        {SIZE},
    ),
    "dict-accumulation": (
        "{% set ns = namespace(d={}) %}{% for i in range(10000) %}"
        "{% set ns.d = dict(ns.d, **{'k' ~ i: 'x' * 999}) %}{% endfor %}",
        {SIZE, TIME},  # (0.4 s of work before the size is reached: slower when busy)
    ),
    "namespace-linked-list": (
        "{% set ns = namespace(l=[], s='a' * 99999) %}{% for i in range(10000) %}"
        "{% set ns.s = ns.s[1:] ~ 'b' %}{% set ns.l = [ns.l, ns.s] %}{% endfor %}",
        {SIZE},
    ),
    "nested-range-100k": (
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        {RANGE},
    ),
    "nested-loops": (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        {LOOPS, TIME},
    ),
    "nested-loops-output": (
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ i ~ j }}{% endfor %}{% endfor %}",
        {SIZE, LOOPS, TIME},
    ),
    "huge-range": ("{{ range(10**12)|list }}", {RANGE}),
    "lipsum": ("{{ lipsum(n=10**7) }}", {SIZE}),
    "lipsum-in-loop": (
        "{% for i in range(10000) %}{% set x = lipsum(n=100) %}{% endfor %}",
        {TIME},
    ),
    "format-filter-width": ("{{ '%999999999s'|format('x') }}", {SIZE}),
    "percent-star-width": ("{{ '%*s' % (10**9, 'x') }}", {SIZE}),
    "percent-precision": ("{{ '%.999999999f' % 1.5 }}", {SIZE}),
    "str-format-width": ("{{ '{:>999999999}'.format(1) }}", {SIZE}),
    "str-format-nested-width": ("{{ '{0:{1}}'.format('x', 10**9) }}", {SIZE}),
    "str-format-repeated-field": ("{{ '{0}{0}{0}{0}'.format('x' * 999999) }}", {SIZE}),
    "ljust-method": ("{{ 'a'.ljust(10**10) }}", {SIZE}),
    "zfill-method": ("{{ 'a'.zfill(10**10) }}", {SIZE}),
    "expandtabs-method": ("{{ ('\\t' * 100000).expandtabs(100000) }}", {SIZE}),
    "to-bytes-method": ("{{ (10).to_bytes(10**10, 'big') }}", {SIZE}),
    "translate-method": ("{{ ('a' * 999999).translate({97: 'xx'}) }}", {SIZE}),
    "wordwrap-long-word": ("{{ ('a' * 999999)|wordwrap(1) }}", {TIME}),
    "wordwrap-wrapstring": ("{{ 'a b c'|wordwrap(1, wrapstring='x' * 999999) }}", {SIZE}),
    "truncate-then-repeat": ("{{ ('ab' * 999999)|truncate(999999) * 1000 }}", {SIZE}),
    "sum-of-lists": ("{{ ('a' * 999999)|batch(1)|sum(start=[])|length }}", {TIME}),
    "slice-filter": ("{{ [1]|slice(10**9)|list }}", {RANGE}),
    "batch-fill": ("{{ [1]|batch(10**9, 0)|list }}", {SIZE}),
    "tojson-indent": ("{{ {'a': [1] * 999}|tojson(indent=10**8) }}", {SIZE}),
    "urlize-target": ("{{ ('a.co ' * 99999)|urlize(target='x' * 1000) }}", {SIZE}),
    "macro-recursion": ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", {RECURSION}),
    "macro-branching": (
        "{% macro m(n) %}{% if n < 40 %}{{ m(n + 1) }}{{ m(n + 1) }}{% endif %}"
        "{% endmacro %}{{ m(0) }}",
        {TIME},
    ),
    "recursive-loop": ("{% for x in [1] recursive %}{{ loop([1, 1]) }}{% endfor %}", {RECURSION}),
    "deep-nesting-printed": (
        "{% set ns = namespace(x=none) %}{% for i in range(5000) %}"
        "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
        {RECURSION, TIME},
    ),
    "big-ops-in-loop": (
        "{% for i in range(10000) %}{% set x = ('a' * 999999)|replace('a', 'b') %}{% endfor %}",
        {TIME},
    ),
    "dunder-mul": ("{{ 'x'.__mul__(10**10) }}", {SANDBOX}),
    # two equal graphs of 2**40 shared references: ``==`` (or str) walks them all
    "shared-ref-graphs-compared": (
        "{% set a = [1] %}{% set b = [1] %}"
        + "{% set a = [a, a] %}{% set b = [b, b] %}" * 40
        + "{{ a == b }}",
        {SIZE},
    ),
    "fromkeys-graphs-compared": (
        "{% set a = {}.fromkeys(range(1000), [1]) %}{% set b = {}.fromkeys(range(1000), [1]) %}"
        "{% set a = {}.fromkeys(range(1000), a) %}{% set b = {}.fromkeys(range(1000), b) %}"
        "{{ a == b }}",
        {SIZE},
    ),
    "map-default-refs": (
        "{% set x = 'x' * 99999 %}{% set y = 'x' * 99999 %}"
        "{{ ([none] * 1000)|map('default', x, true)|list"
        " == ([none] * 1000)|map('default', y, true)|list }}",
        {SIZE},
    ),
}

RUNNER = textwrap.dedent(
    """
    import json, os, resource, signal, sys, time

    from llmops.errors import RenderError
    from llmops.prompts._render import compile_template, render_template

    def run(source):
        signal.alarm(30)
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
        start = time.perf_counter()
        result = {"raised": None}
        try:
            template = compile_template(source, file="bomb.yaml", line=None)
            result["length"] = len(render_template("bomb", template, {}))
        except RenderError as exc:
            result.update(raised=type(exc).__name__, limit=getattr(exc, "limit", None),
                          prompt=exc.prompt, message=str(exc)[:500])
        except BaseException as exc:
            result.update(raised=type(exc).__name__, message=str(exc)[:500])
        result["seconds"] = time.perf_counter() - start
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return result

    out = {}
    for name, source in json.load(sys.stdin).items():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, json.dumps(run(source)).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        out[name] = json.loads(data) if data else {"raised": f"child died ({status})"}
    json.dump(out, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def bomb_results() -> dict[str, dict]:
    """Run every bomb once, each in its own bounded fork of one child process."""
    sources = {name: source for name, (source, _) in BOMBS.items()}
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.integration  # bomb_results runs the bombs in child processes
@pytest.mark.xdist_group("render-bombs")  # one worker runs them all: bomb_results runs once
@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_refused_quickly_and_small(bomb_results: dict[str, dict], name: str) -> None:
    _, allowed = BOMBS[name]
    result = bomb_results[name]
    if allowed == {SANDBOX}:
        assert result["raised"] == "SandboxViolationError", result
    else:
        assert result["raised"] == "TemplateLimitError", result
        assert result["limit"] in allowed, result
        assert "out of memory" not in result["message"], result
    assert result["prompt"] == "bomb"
    assert "prompt 'bomb'" in result["message"]
    assert result["seconds"] < 10, result  # the time limit is 1 s: generous for a busy machine
    assert result["peak_mb"] < 512, result  # a 1 MB string has copies, never gigabytes


# -- legitimate templates, up to the limits -------------------------------------------


# The legitimate templates below do up to ~0.5 s of work: on a busy machine they
# get more time than the default 1 s, so that only the size limits are tested.
GENEROUS = RenderLimits(seconds=60)


def render(source: str, values: dict | None = None, limits: RenderLimits | None = None) -> str:
    template = compile_template(source, file="t.yaml", line=None)
    return render_template("t", template, values or {}, limits=limits)


def test_defaults() -> None:
    assert RenderLimits() == RenderLimits(
        output_chars=1_000_000,
        range_items=10_000,
        loop_iterations=1_000_000,
        seconds=1.0,
        call_depth=100,
    )


def test_ranges_and_loops_below_the_limits_render() -> None:
    assert render("{% for i in range(9000) %}.{% endfor %}", limits=GENEROUS) == "." * 9000
    assert render("{{ range(MAX)|list|length }}", {"MAX": MAX_RANGE_ITEMS}) == str(MAX_RANGE_ITEMS)
    nested = "{% for i in range(1000) %}{% for j in range(900) %}{% endfor %}{% endfor %}done"
    assert render(nested, limits=GENEROUS) == "done"  # 901,000 iterations of the 1,000,000


def test_output_up_to_the_limit_renders() -> None:
    assert len(render("{{ 'x' * 500000 }}")) == 500_000
    loop = "{% for i in range(500) %}{{ 'y' * 1000 }}{% endfor %}"
    assert len(render(loop, limits=GENEROUS)) == 500_000
    assert len(render("{{ text }}", {"text": "z" * MAX_OUTPUT_CHARS})) == MAX_OUTPUT_CHARS
    assert len(render("{{ ('a' * 999999)|center(1000000) }}")) == 1_000_000
    with pytest.raises(TemplateLimitError) as info:
        render("{{ text }}!", {"text": "z" * MAX_OUTPUT_CHARS})
    assert info.value.limit == "output_size"


def test_plain_templates_count_their_output_too() -> None:
    # names, attributes and ``if`` only: compiled without the hooks, output still counted
    source = "{% if x %}{{ x }}{% endif %}" * 70
    template = compile_template(source, file="t.yaml", line=None)
    assert template.llmops_plain is True
    assert len(render_template("t", template, {"x": "y" * 14_000})) == 980_000
    with pytest.raises(TemplateLimitError) as info:
        render_template("t", template, {"x": "y" * 15_000})
    assert info.value.limit == "output_size"
    assert compile_template("{{ x|upper }}", file="t.yaml", line=None).llmops_plain is False


def test_intermediate_values_up_to_the_limit_work() -> None:
    source = (
        "{% set big = 'ab' * 400000 %}{{ (big ~ big[:100000])|length }} "
        "{{ ([0] * 1000 + [1] * 1000)|length }} {{ big|replace('a', 'c')|length }} "
        "{{ '{:>500000}'.format('x')|length }} {{ ('%900000s' % 'x')|length }} "
        "{{ (2 ** 4000)|string|length }} {{ [big]|join|length }}"
    )
    assert render(source, limits=GENEROUS) == "900000 2000 800000 500000 900000 1205 800000"


def test_macro_recursion_below_the_depth_renders() -> None:
    source = "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ m(40) }}"
    assert render(source, limits=GENEROUS) == "".join(str(n) for n in range(41))


def test_accumulating_a_list_in_a_namespace_works() -> None:
    source = (
        "{% set ns = namespace(items=[]) %}{% for i in range(5000) %}"
        "{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items|sum }}"
    )
    assert render(source, limits=GENEROUS) == str(sum(range(5000)))


# Jinja features a prompt may use: they render exactly as in a plain Jinja2 sandbox.
SAME_AS_JINJA = [
    "{% for d in docs %}{{ loop.index }}/{{ loop.length }} {{ d.title|title }}"
    "{% if not loop.last %}, {% endif %}{% endfor %}",
    "{% for d in docs if d.score > 1 %}{{ d.title }}{{ loop.revindex }}{% else %}none{% endfor %}",
    "{% for k, v in meta|dictsort %}{{ k }}={{ v }};{% endfor %}{{ meta.items()|list|length }}",
    "{% for node in tree recursive %}[{{ node.name }}{{ loop(node.children) }}]{% endfor %}",
    "{% macro card(t, n=1) %}<{{ t|upper }}:{{ n * 2 }}>{% endmacro %}{% macro box(x) %}"
    "[{{ caller(x) }}]{% endmacro %}{{ card('a') }}{% call(y) box(3) %}in {{ y }}{% endcall %}",
    "{% set ns = namespace(total=0, names=[]) %}{% for d in docs %}"
    "{% set ns.total = ns.total + d.score %}{% set ns.names = ns.names + [d.title] %}"
    "{% endfor %}{{ ns.total }} {{ ns.names }}",
    "{% set block %}{% for d in docs %}- {{ d.title }}\n{% endfor %}{% endset %}"
    "{{ block|indent(2) }}",
    "{% filter upper %}{{ question }} {{ docs|length }}{% endfilter %}",
    "{{ docs|map(attribute='title')|join(', ') }}|{{ docs|sum(attribute='score') }}|"
    "{{ docs|selectattr('score', 'gt', 1)|map(attribute='title')|list }}",
    "{{ docs|groupby('score')|map('first')|list }} {{ docs|batch(2)|list|length }}"
    " {{ docs|slice(2)|list|length }} {{ [3, 1, 2]|sort|unique|list }} {{ 'abc'|reverse }}",
    "{{ '%s has %d docs (%.2f%%)'|format(question, docs|length, 12.5) }} {{ '%-6s|' % 'ab' }}"
    " {{ '%(a)s/%(b)s' % {'a': 1, 'b': 2} }}",
    "{{ '{} {:>8} {:.3f} {!r} {x}'.format('a', 'b', 3.14159, 'q', x=[1]) }}"
    " {{ '{a}-{b}'.format_map({'a': 1, 'b': 2}) }}",
    "{{ question ~ '?' ~ 3 ~ none }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ (1, 2) + (3,) }}"
    " {{ 2 ** 10 }} {{ 7 % 3 }} {{ 7 // 2 }} {{ 10 / 4 }} {{ -3 }} {{ 1.5 * 2 }} {{ True + 1 }}",
    "{{ question|wordwrap(10) }}|{{ question|truncate(12) }}|{{ question|center(40) }}|"
    "{{ question|replace('o', '0', 2) }}|{{ question|wordcount }}",
    "{{ meta|tojson }} {{ meta|tojson(indent=2) }} {{ meta|pprint }} {{ meta|xmlattr }}",
    "{{ 'see www.example.com or http://a.io'|urlize }} {{ '<b>x</b>'|striptags }}"
    " {{ 'a&b'|e }} {{ 'a b'|urlencode }}",
    "{{ question.center(30, '*') }} {{ question.ljust(25) }}| {{ '7'.zfill(4) }}"
    " {{ 'a\\tb'.expandtabs(4) }} {{ ', '.join(['x', 'y']) }} {{ question.replace('e', 'E') }}",
    "{% set c = cycler('odd', 'even') %}{% set j = joiner(' | ') %}{% for i in range(4) %}"
    "{{ j() }}{{ c.next() }}{{ loop.cycle('<', '>') }}{% endfor %} {{ dict(a=1, b=[2]) }}",
    "{% autoescape true %}{{ '<i>' ~ question }}{{ '<b>'|safe ~ '<c>' }}{% endautoescape %}"
    " {{ range(3)|list }} {{ range(1, 10, 3)|list }}",
    "{{ docs[0].title }} {{ docs[-1]['score'] }} {{ meta.get('k', 'd') }} {{ question[:5] }}"
    " {{ 'x' in question }} {{ docs|first }} {{ docs|last|length }} {{ docs|length is even }}",
    "{{ (10 ** 20) * 3 }} {{ 2 ** -2 }} {{ 1e300 * 10 }} {{ [1, [2, [3]]] }} {{ {'a': (1, 2)} }}",
]


@pytest.mark.parametrize("source", SAME_AS_JINJA)
def test_renders_exactly_as_plain_jinja(source: str) -> None:
    values = {
        "question": "Why does the router reboot?",
        "docs": [
            {"title": "reset guide", "score": 2},
            {"title": "firmware", "score": 1},
            {"title": "wifi", "score": 3},
        ],
        "meta": {"k": "v", "n": 2, "tags": ["x", "y"]},
        "tree": [{"name": "a", "children": [{"name": "b", "children": []}]}],
    }
    plain = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    random.seed(7)
    expected = plain.from_string(source).render(values)
    random.seed(7)
    assert render(source, values) == expected


def test_lipsum_still_works() -> None:
    assert len(render("{{ lipsum(2, false, 5, 10) }}").split("\n\n")) == 2


# -- the errors ---------------------------------------------------------------------------


def test_limit_error_names_the_prompt_and_the_limit(repo: PromptRepo) -> None:
    repo.write("bomb.yaml", "template: \"{{ 'a' * 10**10 }}\"\n")
    with pytest.raises(TemplateLimitError) as info:
        repo.registry.load("bomb").render()
    error = info.value
    assert isinstance(error, RenderError) and error.exit_code == 2
    assert error.prompt == "bomb" and error.limit == "output_size"
    message = str(error)
    assert message.startswith("prompt 'bomb': template exceeded the output size limit")
    assert "(1,000,000 characters)" in message and "10,000,000,000" in message


@pytest.mark.parametrize(
    ("source", "limits", "limit", "words"),
    [
        ("{{ 'x' * 101 }}", RenderLimits(output_chars=100), "output_size", "output size limit"),
        ("{{ range(11)|list }}", RenderLimits(range_items=10), "range_size", "range size limit"),
        (
            "{% for i in range(40) %}{% for j in range(40) %}{% endfor %}{% endfor %}",
            RenderLimits(loop_iterations=1000),
            "loop_iterations",
            "loop iteration limit",
        ),
        (
            "{% for i in range(10000) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
            RenderLimits(seconds=0.01),
            "time",
            "time limit",
        ),
        (
            "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
            RenderLimits(call_depth=5),
            "recursion",
            "recursion limit",
        ),
    ],
)
def test_each_limit_is_named(source: str, limits: RenderLimits, limit: str, words: str) -> None:
    with pytest.raises(TemplateLimitError) as info:
        render(source, limits=limits)
    assert info.value.limit == limit
    assert str(info.value).startswith(f"prompt 't': template exceeded the {words}")


@pytest.mark.parametrize(
    "source",
    [
        "{% macro m() %}{{ 'x' * 60 }}{{ 'x' * 60 }}{% endmacro %}{{ m()|length }}",
        "{% set s %}{{ 'x' * 60 }}{{ 'x' * 60 }}{% endset %}{{ s|length }}",
        "{{ ('x' * 60) ~ ('x' * 60) }}",
        "{{ ['x' * 60, 'x' * 60]|join }}",
        "{{ ['x' * 60, 'x' * 60] }}",
        "{{ 'x'|indent(120, true) }}",
        "{% set ns = namespace(l=[]) %}{% set ns.l = ['x' * 60, 'x' * 60] %}",
    ],
)
def test_intermediate_values_obey_a_custom_output_limit(source: str) -> None:
    with pytest.raises(TemplateLimitError) as info:
        render(source, limits=RenderLimits(output_chars=100))
    assert info.value.limit == "output_size"


def test_sandbox_violation_is_unchanged() -> None:
    with pytest.raises(SandboxViolationError):
        render("{{ ''.__class__.__mro__ }}")


def test_renders_in_threads_keep_their_own_budget() -> None:
    slow = compile_template(
        "{% for i in range(10000) %}{% for j in range(100) %}{% endfor %}{% endfor %}",
        file="slow.yaml",
        line=None,
    )
    quick = compile_template("{% for i in range(n) %}{{ i }}{% endfor %}", file="q.yaml", line=None)

    def job(index: int) -> str:
        if index % 2:
            try:
                render_template("slow", slow, {}, limits=RenderLimits(seconds=0.05))
            except TemplateLimitError as exc:
                return exc.limit
            return "finished"
        return render_template("quick", quick, {"n": 500})

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(job, range(8)))
    expected_quick = "".join(str(i) for i in range(500))
    assert results == [expected_quick, "time"] * 4


def test_default_loop_budget_is_shared_by_nested_loops() -> None:
    assert MAX_LOOP_ITERATIONS == 1_000_000
    with pytest.raises(TemplateLimitError) as info:
        render(
            "{% for i in range(10000) %}{% for j in range(101) %}{% endfor %}{% endfor %}",
            limits=GENEROUS,
        )
    assert info.value.limit == "loop_iterations"
