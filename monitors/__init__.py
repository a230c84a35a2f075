"""Monitors: plans, drift rules, alerts, delivery and the Prometheus exporter."""
