"""The tiny reasoner's tokenizer and chat template."""

from __future__ import annotations

from prunescale.toy.tokenizer import THINK_CLOSE, THINK_OPEN, build_tokenizer, render_prompt


def test_markers_are_single_tokens_and_text_round_trips():
    tok = build_tokenizer()
    for marker in (THINK_OPEN, THINK_CLOSE, "<|im_start|>", "<|im_end|>", "Wait"):
        assert len(tok(marker, add_special_tokens=False).input_ids) == 1, marker
    text = render_prompt("x=3;a-5") + "a-5=8\nWait\n" + THINK_CLOSE + "\n\n8<|im_end|>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    assert len(tok("a-5=8\n", add_special_tokens=False).input_ids) == 6  # one char per token


def test_chat_template_matches_training_format(tmp_path):
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    msgs = [{"role": "user", "content": "a>b,b>a;a;2"}]
    with_think = loaded.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert with_think == render_prompt(msgs[0]["content"])
    no_think = loaded.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert no_think == render_prompt(msgs[0]["content"], thinking=False)
    assert no_think.count(THINK_OPEN) == 1  # the block is opened once, never twice
