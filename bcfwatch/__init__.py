"""bcfwatch: an event-streamed outcomes monitor for England's Better Care Fund."""

__version__ = "0.1.0"
