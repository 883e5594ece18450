"""The command line: listing models, one-line errors with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from prunescale.cli import app

runner = CliRunner()


def test_models_json_lists_embedded_and_known():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"tiny-reasoner", "smollm2-135m", "qwen3-8b", "s1.1-7b"} <= set(rows)
    for r in rows.values():
        assert {"name", "path", "params", "source"} <= set(r)
    tiny = rows["tiny-reasoner"]
    assert tiny["source"] == "embedded" and tiny["path"] and tiny["params"] > 1_000_000


def test_models_table():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "tiny-reasoner" in result.stdout


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.startswith("prunescale ")
    for cmd in (["--help"], ["models", "--help"], ["demo", "--help"]):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_demo_refuses_a_folder_that_is_not_its_study(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "holds no study" in result.stderr
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# -- every option is the schema's ------------------------------------------------------------------------

ONLY_CLI = {"out_dir", "as_json", "grid", "on", "limit"}  # options of one command, not of a spec
ALIASES = {"calib": "source"}  # --calib is Calibration.source


def _spec_field(command: str, name: str):
    from prunescale.config import AllocationSpec, Calibration, EvalSpec, PruneSpec, QuantizeSpec, StructuredSpec

    specs = {"prune": (PruneSpec, StructuredSpec), "allocation": (AllocationSpec,), "tune-allocation": (PruneSpec,),
             "eval": (EvalSpec,), "quantize": (QuantizeSpec,)}[command]
    for spec in (*specs, Calibration):
        if name in spec.model_fields:
            return spec.model_fields[name]
    return None


def test_every_option_is_a_schema_field_whose_default_it_leaves_to_the_schema():
    """A CLI option either names a field of prunescale.config (help text from its description, default
    None so the spec's own default applies) or is parsed by the command itself; no default is written
    twice. (OWL's knobs, for one, are written only in AllocationOptions.)"""
    import typer.main

    commands = typer.main.get_command(app).commands
    checked = 0
    for name in ("prune", "allocation", "tune-allocation", "eval", "quantize"):
        for param in commands[name].params:
            field = _spec_field(name, ALIASES.get(param.name, param.name))
            if field is None:
                assert param.name in ONLY_CLI, f"{name} --{param.name} is no schema field"
                continue
            if param.required:  # the command's subject (--model, --method, --budgets …): typed every time
                continue
            if field.default is False:  # flags (--overwrite) may say off themselves, as their field does
                assert param.default in (False, None), (name, param.name)
            else:
                assert param.default is None, f"{name} --{param.name} writes its own default {param.default!r}"
            assert field.description and param.help.startswith(field.description), (name, param.name)
            checked += 1
    assert checked > 50


def test_cli_passes_only_what_was_typed(monkeypatch, tmp_path):
    """A method's option set for a method that does not read it, or a knob of another allocation, is an
    error before anything loads (it used to be dropped silently)."""
    for args, message in (
        (["--method", "wanda", "--sparsity", "0.5", "--blocksize", "64"], "blocksize is not an option of wanda"),
        (["--method", "magnitude", "--sparsity", "0.5", "--no-sequential"], "sequential is not an option of magnitude"),
        (["--method", "wanda", "--sparsity", "0.5", "--owl-m", "3"], "owl_m is not a knob of allocation 'uniform'"),
        (["--method", "wanda", "--sparsity", "0.5", "--allocation", "alpha", "--owl-lambda", "0.1"],
         "owl_lambda is not a knob of allocation 'alpha'"),
        (["--method", "shortgpt", "--remove-layers", "1", "--allocation", "owl"], "--allocation is an unstructured"),
        (["--method", "wanda", "--sparsity", "0.5", "--keep-last"], "--keep-last is a layer-removal option"),
    ):
        result = runner.invoke(app, ["prune", "--model", "no-such-model", "--out", str(tmp_path / "o"), *args])
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "o").exists()


def test_input_is_checked_before_any_model_loads(tmp_path):
    """A bad allocation file, or an eval --out that holds something else, is reported as such; the model
    (which does not exist here) is never reached."""
    bad = tmp_path / "alloc.json"
    bad.write_text('{"0": 1.5}')
    result = runner.invoke(app, ["prune", "--model", "no-such-model", "--method", "wanda", "--sparsity", "0.5",
                                 "--allocation", f"file:{bad}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "outside [0, 1)" in result.stderr, result.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["eval", "--model", "no-such-model", "--benchmark", "tiny", "--budgets", "4",
                                 "--out", str(busy)])
    assert result.exit_code == 2 and "holds no prunescale run" in result.stderr, result.stderr
    assert (busy / "notes.txt").read_text() == "mine"


def test_a_bad_calibration_source_is_found_before_the_model(tmp_path):
    for calib, message in (("wikipedia", "unknown calibration source 'wikipedia'"),
                           (f"text:{tmp_path / 'none.txt'}", "calibration file not found")):
        result = runner.invoke(app, ["prune", "--model", "no-such-model", "--method", "wanda", "--sparsity", "0.5",
                                     "--calib", calib, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and message in result.stderr, result.stderr


# -- options are generated from the schema; capabilities come from the registry -------------------------


def test_a_field_added_to_a_group_is_an_option_of_the_command_with_its_help_and_default():
    """The one edit a new knob needs: a field on its group. The command that takes the group gets the option
    (flag from the name, help and default from the field), receives it only when typed, lists as ints."""
    import typer
    from pydantic import Field

    from prunescale.cli_options import schema_options
    from prunescale.config import Calibration

    class Extended(Calibration):
        new_knob: float = Field(0.25, description="A knob declared in one place.")
        block_list: list[int] | None = Field(None, description="Blocks.")
        fast: bool = Field(True, description="Go fast.")

    seen: dict = {}
    extra = typer.Typer()

    @extra.command()
    @schema_options(Extended)
    def run(**options) -> None:
        seen.clear()
        seen.update(options)

    @extra.command()
    def other() -> None:  # two commands, so typer keeps `run` a subcommand
        pass

    shown = runner.invoke(extra, ["run", "--help"], env={"COLUMNS": "300"})
    assert "--new-knob" in shown.output and "A knob declared in one place. (default 0.25)" in shown.output
    assert "--fast" in shown.output and "--no-fast" in shown.output and "--calib" in shown.output
    assert runner.invoke(extra, ["run", "--new-knob", "0.5", "--block-list", "3,1", "--no-fast"]).exit_code == 0
    assert seen == {"new_knob": 0.5, "block_list": [3, 1], "fast": False}
    assert runner.invoke(extra, ["run"]).exit_code == 0 and seen == {}  # untyped options stay the schema's
    bad = runner.invoke(extra, ["run", "--block-list", "3,x"])
    assert bad.exit_code != 0


def test_callers_ask_the_registry_what_a_method_needs(monkeypatch):
    """A method declared without calibration needs no data, one that reads dense statistics gets them only
    in the dense regime, and the per-matrix group is for the methods that declare it: no name lists."""
    from prunescale import registry
    from prunescale.api.pruning import method_kwargs
    from prunescale.config import PruneSpec

    monkeypatch.setitem(registry.METHODS, "free", registry.Method("prunescale.prune.methods:prune_magnitude",
                                                                   takes_group=True))
    spec = PruneSpec(model="m", out="o", method="free", sparsity=0.5, group="matrix")
    assert not spec.needs_calibration and spec.comparison_group == "matrix"
    assert PruneSpec(model="m", out="o", method="free", sparsity=0.5, allocation="owl").needs_calibration
    dense = PruneSpec(model="m", out="o", method="wanda", sparsity=0.5, allocation="owl", sequential=False)
    alloc = type("A", (), {"input_stats": {"x": 1}})()
    assert method_kwargs(dense, alloc)["input_stats"] == {"x": 1}
    assert "input_stats" not in method_kwargs(dense.model_copy(update={"sequential": True}), alloc)


def test_the_cli_module_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, prunescale.cli; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
