"""Tandem's version, in a module of its own so the platform can read it without importing
the root package (which only users import)."""

__version__ = "0.1.0"
