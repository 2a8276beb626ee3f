"""Python checks used by the example suites (``type: python``, ``value: checks.py:NAME``).

Each gets the model's output and a context with the case's ``vars``; it returns a bool, a
score in [0, 1], or ``{"pass": ..., "score": ..., "reason": ...}``.
"""

import json


def mentions_product(output, context):
    """The answer names the product the customer asked about."""
    return context["vars"]["product"].lower() in output.lower()


def ticket_category(output, context):
    """The extracted ticket has the expected category (and priority, when given)."""
    try:
        ticket = json.loads(output)
    except json.JSONDecodeError as exc:
        return {"pass": False, "score": 0.0, "reason": f"not JSON: {exc.msg}"}
    expected = context["vars"]
    checks = [ticket.get("category") == expected["expected_category"]]
    if "expected_priority" in expected:
        checks.append(ticket.get("priority") == expected["expected_priority"])
    score = sum(checks) / len(checks)
    return {
        "pass": all(checks),
        "score": score,
        "reason": f"category {ticket.get('category')!r}, priority {ticket.get('priority')!r}",
    }
