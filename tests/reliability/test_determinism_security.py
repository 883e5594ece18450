"""Same spec and seed → the same masks and the same generations; models run no code of their own unless
asked; nothing unpickles untrusted files; spec names cannot escape the output folder."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import save_tiny
from prunescale.cli import app
from prunescale.errors import PrunescaleError
from prunescale.models.loader import load_model

SRC = Path(__file__).resolve().parents[2] / "src" / "prunescale"
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("det") / "m", "llama", 3)


def _mask_hash(folder: Path) -> str:
    weights = load_file(folder / "model.safetensors")
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update((weights[name] == 0).numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_same_spec_same_masks(model_dir: Path, tmp_path: Path, method: str):
    hashes = []
    for i in range(2):
        out = tmp_path / f"p{i}"
        args = ["prune", "--model", model_dir, "--method", method, "--sparsity", "0.5", "--allocation", "owl",
                "--calib", "tiny", "--nsamples", "6", "--seqlen", "32", "--seed", "3", "--out", out]
        assert runner.invoke(app, list(map(str, args))).exit_code == 0
        hashes.append(_mask_hash(out))
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("temperature", ["0", "0.8"])
def test_same_spec_same_generations(model_dir: Path, tmp_path: Path, temperature: str):
    texts = []
    for i in range(2):
        out = tmp_path / f"e{i}"
        args = ["eval", "--model", model_dir, "--benchmark", "tiny", "--limit", "6", "--budgets", "0,5,10",
                "--temperature", temperature, "--seeds", "7", "--answer-budget", "3", "--out", out]
        assert runner.invoke(app, list(map(str, args))).exit_code == 0
        texts.append([(r["thinking"], r["answer"]) for r in map(json.loads, (out / "samples.jsonl").open())])
    assert texts[0] == texts[1]


def test_remote_code_never_runs_without_the_flag(model_dir: Path, tmp_path: Path):
    folder = tmp_path / "remote"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import "
                                    "LlamaConfig as EvilConfig\n")
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update({"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig",
                                                   "AutoModelForCausalLM": "evil.EvilConfig"}})
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PrunescaleError):
        load_model(str(folder))
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_the_package():
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\bpickle\b|\bdill\b|\bjoblib\.load\b", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


@pytest.mark.parametrize("name", ["../up", "a/b", "..", ".hidden", "x" * 101, "with space"])
def test_spec_names_cannot_escape(tmp_path: Path, name: str):
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": name, "model": "m", "eval": {"benchmarks": ["tiny"], "budgets": [1]}}))
    result = runner.invoke(app, ["study", str(spec), "--dry-run"])
    assert result.exit_code == 2 and "not a safe name" in result.stderr
    variant = tmp_path / "v.yaml"
    variant.write_text(json.dumps({"name": "ok", "model": "m", "variants": [{"name": name, "method": "wanda",
                                                                              "sparsity": 0.5}],
                                   "eval": {"benchmarks": ["tiny"], "budgets": [1]}}))
    result = runner.invoke(app, ["study", str(variant), "--dry-run"])
    assert result.exit_code == 2 and "not a safe name" in result.stderr
