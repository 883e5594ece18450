"""The training script runs end to end (a few steps) and writes a loadable folder with its stats."""

from __future__ import annotations

import json
import random

from transformers import AutoModelForCausalLM, AutoTokenizer

from prunescale.toy.tasks import sample_problems
from prunescale.toy.train import IGNORE, lr_at, main, segments


def test_wait_traces_mask_only_the_wrong_value():
    rng = random.Random(1)
    p = sample_problems("train", 1, seed=2)[0]
    segs = segments(p, rng, wait_frac=1.0, nothink_frac=0.0)
    masked = [text for text, trained in segs if not trained]
    assert len(masked) == 2  # the prompt and the one wrong value
    assert len(masked[1]) == 1
    text = "".join(t for t, _ in segs)
    assert "Wait\n" in text and text.endswith(p.answer + "<|im_end|>")


def test_nothink_traces_have_an_empty_block():
    p = sample_problems("train", 1)[0]
    segs = segments(p, random.Random(0), wait_frac=0.0, nothink_frac=1.0)
    assert "".join(t for t, _ in segs).count("<think>\n</think>\n\n") == 1


def test_lr_schedule():
    assert lr_at(0, 100, 10, 1.0) == 0.1
    assert lr_at(10, 100, 10, 1.0) == 1.0
    assert abs(lr_at(100, 100, 10, 1.0) - 0.05) < 1e-9


def test_train_smoke(tmp_path, capsys):
    out = tmp_path / "m"
    main(["--out", str(out), "--steps", "3", "--batch", "4", "--layers", "2", "--hidden", "32",
          "--intermediate", "64", "--eval-items", "4", "--quiet"])
    stats = json.loads((out / "training.json").read_text())
    assert stats["args"]["steps"] == 3 and stats["loss_log"][0]["loss"] > 0
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2
    assert AutoTokenizer.from_pretrained(out)("x=1").input_ids
    assert IGNORE == -100
