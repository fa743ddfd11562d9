"""coordinator: sessions and file reservations for teams of AI coding agents, on Redis."""

__version__ = "0.1.0"
