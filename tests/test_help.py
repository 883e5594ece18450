"""Every list a user reads in `--help` comes from the registry it describes (plugins included): each
registered name appears in the help of the options that take it, a name registered later appears too, and
no help text shows an unfilled token."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from prunescale import plugins
from prunescale.catalogue import TOKEN
from prunescale.cli import app

runner = CliRunner()


def _helps(command: str) -> dict[str, str]:
    """Option / argument name → its help as `--help` shows it (the command's help rendered once)."""
    group = typer.main.get_command(app)
    ctx = click.Context(group)
    cmd = group
    for part in command.split():
        cmd = cmd.get_command(ctx, part)
        ctx = click.Context(cmd, parent=ctx, info_name=part)
    cmd.get_help(ctx)
    return {p.name: p.help or "" for p in cmd.params}


def _registries() -> dict[str, list[str]]:
    from prunescale.data.calibration import CORPORA, known_sources
    from prunescale.registry import ALLOCATIONS, METHODS, QUANTIZERS, REFINEMENTS, REMOVALS
    from prunescale.tts.benchmarks import BENCHMARKS

    plugins.load()
    return {"methods": [*METHODS, *REFINEMENTS, *REMOVALS], "allocations": [a for a in ALLOCATIONS if a != "file"],
            "quantizers": list(QUANTIZERS),
            "benchmarks": [*BENCHMARKS, "jsonl:PATH"], "sources": known_sources(),
            "fetchable": [*BENCHMARKS, *CORPORA]}


@pytest.mark.parametrize("command, option, registry", [
    ("prune", "method", "methods"),
    ("prune", "allocation", "allocations"),
    ("prune", "source", "sources"),
    ("prune", "layerif_data", None),
    ("prune", "quantize", "quantizers"),
    ("quantize", "quantize", "quantizers"),
    ("quantize", "source", "sources"),
    ("allocation", "allocation", "allocations"),
    ("tune-allocation", "allocation", "allocations"),
    ("tune-allocation", "source", "sources"),
    ("eval", "benchmark", "benchmarks"),
    ("ppl", "data", "sources"),
    ("data fetch", "name", "fetchable"),
])
def test_help_lists_every_registered_name(command, option, registry):
    helps = _helps(command)
    assert option in helps, sorted(helps)
    assert not TOKEN.search(helps[option])
    for name in _registries()[registry] if registry else ():
        assert name in helps[option], (command, option, name)


def test_a_name_registered_later_appears_in_the_help(monkeypatch):
    from prunescale import registry
    from prunescale.tts import benchmarks

    monkeypatch.setitem(registry.METHODS, "wanda-plus-plus", registry.METHODS["wanda"])
    monkeypatch.setitem(benchmarks.BENCHMARKS, "aime25", benchmarks.BENCHMARKS["aime24"])
    assert "wanda-plus-plus" in _helps("prune")["method"]
    assert "aime25" in _helps("eval")["benchmark"]


def test_rendered_help_names_the_frontier_and_has_no_token():
    for command in (["prune"], ["quantize"], ["eval"], ["ppl"], ["allocation"], ["tune-allocation"], ["data", "fetch"],
                    ["study"], ["benchmarks"]):
        r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
        assert r.exit_code == 0 and not TOKEN.search(r.output), command
    out = runner.invoke(app, ["prune", "--help"], env={"COLUMNS": "400"}).output
    for name in ("ria", "dsnot", "c4", "wikitext2", "traces:gsm8k", "prompts:math", "dlp", "atp", "laco"):
        assert name in out, name
