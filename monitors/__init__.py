"""Monitors: the board's plan against its counts, as statistics, alerts and services.

Four concerns, each a sub-package, imports running one way (an import-linter contract in pyproject.toml):
``service`` and ``analysis`` (side by side) > ``alerting`` > ``rules``.
"""
