"""Producers: NHS number pseudonymisation, the historic log format, replay and the synthetic generator."""
