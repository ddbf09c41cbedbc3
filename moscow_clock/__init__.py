"""moscow_clock: the exact time in Moscow, live in the browser."""

from .web.app import create_app

__all__ = ["create_app"]
