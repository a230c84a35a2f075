"""Producers: NHS number pseudonymisation, the historic event log (:mod:`producers.eventlog`), replay into
Kafka, and the synthetic national generator with its sample plan."""
