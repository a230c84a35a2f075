"""The infrastructure layer's errors, in one place so its modules need not import each other for them."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """A broker operation failed; the message says what to do about it."""


class KafkaSecurityError(BrokerError):
    """The Kafka client security settings are incomplete or unsafe; the message says what to set."""
