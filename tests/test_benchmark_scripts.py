"""Every shipped benchmark script runs: each in its --quick mode (the same code path as the full
measurement, on the tiny reasoner or a small model), ending with one JSON line that has its figures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HAS_VLLM = importlib.util.find_spec("vllm") is not None

SCRIPTS = {  # script → (extra arguments, keys its JSON line must have)
    "tts_sweep.py": ([], {"benchmark", "answer_budgets", "engine_over_generate", "same_useful_tokens"}),
    "tiny_reasoner.py": ([], {"benchmark", "curve", "literal_identical", "sweep_over_literal_time"}),
    "frontier_ppl.py": ([], {"benchmark", "rows", "heldout"}),
    "calibration_sources.py": (["--out", "{tmp}/calib"], {"benchmark", "results", "prune_seconds"}),
    "prune_speed.py": ([], {"benchmark", "dense_forward", "wanda", "sparsegpt"}),
    "gpu_smoke.py": (["--device", "cpu"], {"benchmark", "identical_sample_share", "layerif_max_rel_diff",
                                           "scripted_device_equals_cpu"}),
    "hardware.py": (["--out", "{tmp}/hw"], {"benchmark", "shapes", "full_tokens"}),
    "quantize_speed.py": ([], {"benchmark", "reference", "time_ratio", "peak_rss_ratio", "perplexity"}),
    "engines.py": ([] if HAS_VLLM else ["--engines", "hf"], {"benchmark", "engines"}),
}


def test_every_script_is_exercised():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_quick_mode_ends_with_its_json_line(script, tmp_path):
    extra, keys = SCRIPTS[script]
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert keys <= line.keys(), sorted(line)
