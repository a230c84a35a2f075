"""Drift rules: pure statistics with no Kafka and no alert wording.

:mod:`~monitors.rules.profile` (the expected shape of a year by day), :mod:`~monitors.rules.noise` (the
noise model learned from a baseline year), :mod:`~monitors.rules.baseline` (a board's baseline and plan
trajectory from counts), :mod:`~monitors.rules.trajectory` (planned counts over a window),
:mod:`~monitors.rules.spc` (XmR charts with NHSRplotthedots' rules) and :mod:`~monitors.rules.drift`
(the drift rule that decides when a board is off its plan).
"""
