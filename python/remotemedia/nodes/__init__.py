"""Python nodes that ship with remotemedia; each is registered on import, and its heavy
imports (models) happen in initialize()."""

from . import speech  # noqa: F401
