"""The lists a user reads in ``--help``, made from the registries they describe (plugins included), so a
new method, allocation, benchmark or calibration source appears in every help text that names its kind.

Help texts (the option groups' field descriptions in :mod:`prunescale.config` and the CLI's own) write a
list as a token, ``@methods@``; :func:`expand` fills it in. The CLI expands when it shows help only:
filling the lists imports the registries, which import torch, and no other invocation should pay for
that before it needs to.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"@([a-z_]+)@")


def lists() -> dict[str, str]:
    """Token name → the list as the help shows it."""
    from prunescale import plugins
    from prunescale.config import REFINEMENTS
    from prunescale.data.calibration import CORPORA, known_sources
    from prunescale.prune.allocation.registry import ALLOCATORS
    from prunescale.prune.methods import METHODS
    from prunescale.prune.structured.rules import RULES
    from prunescale.tts.benchmarks import BENCHMARKS

    plugins.load()
    return {
        "methods": " | ".join(METHODS),
        "refinements": " | ".join(REFINEMENTS),
        "removal": " | ".join(RULES),
        "allocations": " | ".join([*(a for a in ALLOCATORS if a != "file"), "file:PATH"]),
        "benchmarks": " | ".join([*BENCHMARKS, "jsonl:PATH"]),
        "sources": ", ".join(known_sources()),
        "fetchable": " | ".join([*BENCHMARKS, *CORPORA]),
    }


def expand(text: str, table: dict[str, str] | None = None) -> str:
    """``text`` with every ``@name@`` token replaced by its list (an unknown token is an error: a help text
    that names a list nobody fills would print the token)."""
    table = lists() if table is None else table
    return TOKEN.sub(lambda m: table[m.group(1)], text)
