"""Faust stream processing: the event contract, the worker app, its agents and tables."""
