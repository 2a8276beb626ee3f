"""The Feedback page shows the scores ``llmops score`` stores next to users' ratings."""

from __future__ import annotations

from tests.dashboard.conftest import goto, open_app, table, texts
from tests.evals.production import production


def test_score_names_appear_next_to_user_ratings(
    dashboard_env, repo, server, make_gateway, database_url, cli, tmp_path
) -> None:
    prod = production(repo, server, make_gateway, database_url)
    prod.call("I want a refund", minutes_ago=30, feedback={"thumbs": 0})
    prod.call("Hello there", minutes_ago=20, feedback={"thumbs": 1})
    prod.flush()
    checks = repo.root / "online.yaml"
    checks.write_text("- {type: icontains, value: refund, metric: mentions-refund}\n")
    result = cli(
        "score", "--prompt", "support/answer", "--assert", str(checks),
        "--database-url", database_url, cwd=repo.root,
        env={"LLMOPS_HOME": str(tmp_path / "score-home")},
    )  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr

    at = goto(open_app(), "feedback")
    headings = texts(at.markdown)
    assert "##### thumbs" in headings and "##### score\\:mentions-refund" in headings  # escaped
    rows = table(at, "Count")
    shown = {(r["Feedback"], r["Score"]): r["Count"] for r in rows}
    assert shown == {
        ("thumbs", "0"): 1,
        ("thumbs", "1"): 1,
        ("score:mentions-refund", "0"): 1,
        ("score:mentions-refund", "1"): 1,
    }
    comments = {r["Feedback"]: r["Comment"] for r in table(at, "Comment") if r["Feedback"]}
    assert comments["score:mentions-refund"].startswith(("pass: ", "fail: "))
