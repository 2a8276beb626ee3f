"""`llmops demo`: a simulated support app, the example evals, then the dashboard."""
