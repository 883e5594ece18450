"""What fills prunescale's registries beyond the built-in entries: the embedded tiny reasoner's benchmark,
item kind and calibration sources. The application layer (the API, the CLI, the study runner) calls
:func:`load` before it looks anything up by name; the library below it (evaluator, data, pruning) never
imports a plugin, so it runs without the model organism."""

from __future__ import annotations


def load() -> None:
    import prunescale.toy  # noqa: F401  (registers on import)
