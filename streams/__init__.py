"""The Faust worker and what it publishes.

The worker (:mod:`streams.app`, its per-event rules in :mod:`streams.board_state` and per-partition state in
:mod:`streams.partition_state`), the batch oracle of the same rules (:mod:`streams.oracle`), and the one
public way to read its counts (:mod:`streams.published`, :mod:`streams.state_reader`,
:mod:`streams.live_counts`). The event contract is :mod:`bcfwatch.core.events`; the historic log's readers
are :mod:`producers.eventlog`.
"""
