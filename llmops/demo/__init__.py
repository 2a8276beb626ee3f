"""`llmops demo`: a month of a simulated support app (its traffic, prompts, evals and budgets),
then the dashboard. See :mod:`llmops.demo.support_app` for the app and its month."""
