"""The lists a user reads in ``--help``, made from the registries they describe (plugins included), so a
new method, allocation, benchmark or calibration source appears in every help text that names its kind.

Help texts (the option groups' field descriptions in :mod:`prunescale.config` and the CLI's own) write a
list as a token, ``@methods@``; :func:`expand` fills it in. The CLI imports this module when it shows help
only: the data and benchmark registries (and the plugins that fill them) import torch, and no other
invocation should pay for that before it needs to.
"""

from __future__ import annotations

import re

from prunescale import plugins
from prunescale.config import grid_knobs
from prunescale.data.calibration import CORPORA, known_sources
from prunescale.registry import ALLOCATIONS, METHODS, QUANTIZERS, REFINEMENTS, REMOVALS
from prunescale.tts.benchmarks import BENCHMARKS

TOKEN = re.compile(r"@([a-z_]+)@")


def lists() -> dict[str, str]:
    """Token name → the list as the help shows it."""
    plugins.load()
    return {
        "methods": " | ".join(METHODS),
        "refinements": " | ".join(REFINEMENTS),
        "removal": " | ".join(REMOVALS),
        "quantizers": " | ".join(QUANTIZERS),
        "allocations": " | ".join([*(a for a in ALLOCATIONS if a != "file"), "file:PATH"]),
        "benchmarks": " | ".join([*BENCHMARKS, "jsonl:PATH"]),
        "sources": ", ".join(known_sources()),
        "fetchable": " | ".join([*BENCHMARKS, *CORPORA]),
        "grid": ", ".join(grid_knobs()),
    }


def expand(text: str, table: dict[str, str] | None = None) -> str:
    """``text`` with every ``@name@`` token replaced by its list (an unknown token is an error: a help text
    that names a list nobody fills would print the token)."""
    table = lists() if table is None else table
    return TOKEN.sub(lambda m: table[m.group(1)], text)
