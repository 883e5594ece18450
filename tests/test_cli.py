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
