"""Bottom layer: the domain concepts every other part shares (settings, topics, boards, calendar,
HES codes, the event contract, NHS numbers, plans). Imports nothing else of the project."""
