"""Packaging beyond what pyproject.toml can say: the top-level ``dashboard/`` folder of the
repository installs as the ``llmops.dashboard`` package (never as a top-level ``dashboard``),
so that ``llmops dashboard`` works from a wheel. Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["llmops", "llmops.*"], exclude=["*__pycache__"]),
        "llmops.dashboard",
        "llmops.dashboard.pages",
    ],
    package_dir={"llmops.dashboard": "dashboard"},
)
