"""Real reasoning formats on scripted checkpoints (prunescale.toy.scripted): s1's two-token markers under the
plain Qwen2.5 template, Qwen3's <think> tokens, a Llama base model with plain-text markers and a BOS.

Each scripted model thinks A B C D E (5 tokens), then writes its family's stop, so every boundary of
literal budget forcing can be checked exactly, and the sweep against one capped run per budget.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prunescale.api import eos_ids
from prunescale.toy.scripted import literal_rows, sweep_rows
from prunescale.tts.benchmarks import Item
from prunescale.tts.engines.base import Completion, Request
from prunescale.tts.engines.hf import HFEngine
from prunescale.tts.forcing import BudgetResult, Markers, Policy, sweep
from prunescale.tts.grading import extract_letter, extract_math
from prunescale.tts.prompting import FORMATS, notice, prompt_ids, render, think_format

ITEM = Item("q", "What is 6 times 7?", "42", "math")
NAMES = {"s1": "s1.1-scripted", "qwen3": "qwen3-scripted", "llama": "llama-scripted"}


def _load(folder: Path, name: str | None = None):
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    fmt = think_format(tok, name or str(folder))
    return model, tok, fmt, Markers(tok, fmt, eos_ids(model.generation_config))


def _sweep(folder: Path, budgets, seeds=(None,), temperature=0.0, **policy):
    model, tok, fmt, mk = _load(folder)
    engine = HFEngine(model, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id, 4)
    prompts = [prompt_ids(tok, ITEM, fmt)] * len(seeds)
    pol = Policy(list(budgets), answer_budget=16, temperature=temperature, **policy)
    trajs, results = sweep(engine, mk, prompts, list(seeds), [fmt.cue(ITEM)] * len(seeds), pol)
    return tok, trajs, results


def _hf(folder: Path, device: str = "cpu") -> HFEngine:
    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return HFEngine(model, tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id, 4)


def _swept_equals_literal(folder: Path, budgets, seeds=(None,), temperature=0.0, **policy) -> None:
    engine = _hf(folder)
    swept = sweep_rows(engine, folder, budgets, seeds, temperature, **policy)
    assert swept == literal_rows(engine, folder, budgets, seeds, temperature, **policy)


# -- formats and prompts ------------------------------------------------------------------------------


def test_s1_is_recognised_and_prompted_as_its_harness_does(scripted, tmp_path):
    """Defect 1: s1.1 ships the plain Qwen2.5 template (no think tokens); its markers come from the family."""
    folder = scripted("s1", NAMES["s1"])
    tok = AutoTokenizer.from_pretrained(folder)
    for model in ("s1.1-7b", "simplescaling/s1.1-7B", str(folder)):
        fmt = think_format(tok, model)
        assert (fmt.name, fmt.opener, fmt.stop, fmt.closer) == ("s1", "<|im_start|>think", "<|im_start|>",
                                                               "<|im_start|>answer"), model
    text = render(tok, ITEM, think_format(tok, "s1.1-7b"))
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                           "assistant.<|im_end|>\n<|im_start|>user\nWhat is 6 times 7?")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n<|im_start|>think")
    # a pruned copy is traced to its base model; a hub-cache snapshot by its repo id; markers select s1 whole
    pruned = tmp_path / "my-pruned"
    pruned.mkdir()
    (pruned / "pruning_manifest.json").write_text(json.dumps({"base_model": "simplescaling/s1.1-7B"}))
    snapshot = tmp_path / "hub" / "models--simplescaling--s1.1-7B" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert think_format(tok, str(pruned)).name == "s1" and "pruned from" in think_format(tok, str(pruned)).source
    assert think_format(tok, str(snapshot)).name == "s1"
    assert think_format(tok, "", ("<|im_start|>think", "<|im_start|>answer")) == replace(
        FORMATS["s1"], source="--think-open/--think-close")
    assert think_format(tok, "Qwen/Qwen2.5-7B-Instruct").name == "think"  # not s1: no markers of its own
    assert not think_format(tok, "Qwen/Qwen2.5-7B-Instruct").marked


def test_qwen3_opens_the_block_the_template_leaves_closed(scripted):
    tok = AutoTokenizer.from_pretrained(scripted("qwen3"))
    fmt = think_format(tok, "Qwen/Qwen3-8B")
    assert fmt.name == "think" and fmt.marked and notice(fmt) is None
    assert render(tok, ITEM, fmt) == ("<|im_start|>user\nWhat is 6 times 7?\n\nPlease reason step by step, and put "
                                      "your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert think_format(tok, "qwen3-8b").source == "registry entry qwen3-8b"


def test_markerless_model_gets_a_notice_and_its_bos(scripted):
    """Defect 6: no markers → one notice naming the markers and the override; no template → the BOS."""
    folder = scripted("llama")
    tok = AutoTokenizer.from_pretrained(folder)
    fmt = think_format(tok, str(folder))
    assert not fmt.marked
    line = notice(fmt)
    assert "'<think>'" in line and "'</think>'" in line and "--think-open/--think-close" in line
    ids = prompt_ids(tok, ITEM, fmt)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1 and ids[-1] != tok.eos_token_id
    assert tok.decode(ids[1:]).endswith("\\boxed{}.\n<think>\n")
    qwen = AutoTokenizer.from_pretrained(scripted("qwen3"))  # a template writes its own BOS (none for Qwen)
    assert prompt_ids(qwen, ITEM, think_format(qwen))[0] == qwen.convert_tokens_to_ids("<|im_start|>")


def test_readme_shows_the_exact_prompts_and_forced_ends(scripted):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for family in ("s1", "qwen3"):
        folder = scripted(family, NAMES[family])
        tok = AutoTokenizer.from_pretrained(folder)
        fmt = think_format(tok, str(folder))
        assert render(tok, ITEM, fmt) in readme, family
        assert "\n" + fmt.closer + fmt.cue(ITEM) in readme, family


# -- the literal boundary, through the hf engine ------------------------------------------------------

BOUNDARY = {  # budgets, and per budget: (forced end?, the thinking kept)
    "s1": ([4, 5, 6, 30], [(True, "ABCD"), (True, "ABCDE"), (False, "ABCDE"), (False, "ABCDE")]),
    "qwen3": ([4, 5, 6, 30], [(True, "ABCD"), (True, "ABCDE"), (False, "ABCDE"), (False, "ABCDE")]),
    # an 8-token plain-text closer: a budget inside it keeps its head, as a capped run does
    "llama": ([5, 8, 12, 13, 30], [(True, "ABCDE"), (True, "ABCDE</t"), (True, "ABCDE</think"), (False, "ABCDE"),
                                   (False, "ABCDE")]),
}


@pytest.mark.parametrize("family", BOUNDARY)
def test_natural_end_before_at_and_after_each_budget(scripted, family):
    """Defect 4: a close that would be token B + 1 is a forced end at B (literal budget forcing)."""
    folder = scripted(family, NAMES[family])
    budgets, expected = BOUNDARY[family]
    tok, trajs, results = _sweep(folder, budgets)
    got = [(r.forced_end, tok.decode(trajs[0].kept(r.budget))) for r in results[0]]
    assert got == expected
    for r in results[0]:
        assert extract_math(r.answer_text, len(r.cue)) == "42"  # forced ends answer from the cue, naturals freely
        assert (r.cue != "") == r.forced_end
    _swept_equals_literal(folder, budgets)


WAITS = {  # wait=1: budgets, and per budget (forced end?, Wait rounds seen, the thinking kept); qwen3 at 6 keeps
    # the newline before "Wait" but not "Wait" itself: no round seen
    "s1": ([5, 6, 11, 12], [(True, 0, "ABCDE"), (True, 1, "ABCDEWait"), (True, 1, "ABCDEWaitABCDE"),
                            (False, 1, "ABCDEWaitABCDE")]),
    "qwen3": ([5, 6, 13, 14], [(True, 0, "ABCDE"), (True, 0, "ABCDE\n"), (True, 1, "ABCDE\nWait\nABCDE"),
                               (False, 1, "ABCDE\nWait\nABCDE")]),
    "llama": ([10, 13, 16, 21], [(True, 0, "ABCDE</thi"), (True, 1, "ABCDE\nWait\nABCDE"),
                                 (True, 1, "ABCDE\nWait\nABCDE</t"), (False, 1, "ABCDE\nWait\nABCDE")]),
}


@pytest.mark.parametrize("family", WAITS)
def test_wait_rounds_and_min_budget(scripted, family):
    folder = scripted(family, NAMES[family])
    budgets, expected = WAITS[family]
    tok, trajs, results = _sweep(folder, budgets, wait_rounds=1)
    got = [(r.forced_end, r.waits, tok.decode(trajs[0].kept(r.budget))) for r in results[0]]
    assert got == expected
    _swept_equals_literal(folder, budgets, wait_rounds=1)
    tok, trajs, results = _sweep(folder, [40], min_budget=9)
    assert (results[0][0].forced_end, results[0][0].waits) == (False, 1)
    assert trajs[0].wait_at == [5]


@pytest.mark.parametrize("family", ["s1", "qwen3", "llama"])
def test_eos_inside_thinking_and_a_model_that_never_closes(scripted, family):
    tok, trajs, results = _sweep(scripted(family, end="eos"), [5, 6])
    short, long = results[0]
    assert trajs[0].hit_eos and short.forced_end and not long.forced_end
    assert long.cue and extract_math(long.answer_text, len(long.cue)) == "42"  # asked for its answer, not graded
    tok, trajs, results = _sweep(scripted(family, end="never"), [7, 30])
    assert [(r.forced_end, r.think_tokens) for r in results[0]] == [(True, 7), (True, 30)]
    assert tok.decode(trajs[0].kept(7)) == "ABCDEAB"


@pytest.mark.parametrize("wait", [0, 1])
@pytest.mark.parametrize("family", ["s1", "qwen3", "llama"])
def test_seeded_sweep_equals_literal_runs_token_for_token(scripted, family, wait):
    """Sampling at T = 1 with coins (close or think on; answer 42 or 47): the sweep and one capped run per
    budget give the same tokens, sample for sample."""
    folder = scripted(family, NAMES[family] + "-coin", branch_from=2, answer_alt="7")
    budgets, seeds = [0, 2, 3, 4, 6, 9, 13, 20], [11 * i + 5 for i in range(8)]
    tok, trajs, results = _sweep(folder, budgets, seeds, temperature=1.0, wait_rounds=wait)
    _swept_equals_literal(folder, budgets, seeds, temperature=1.0, wait_rounds=wait)
    assert len({t.closes[0][0] for t in trajs}) > 1  # the coins landed differently
    answers = {extract_math(r.answer_text, len(r.cue)) for per in results for r in per}
    assert {"42", "47"} <= answers


# -- grading reads only what the model wrote ---------------------------------------------------------


@pytest.mark.parametrize("cue, generated, expected", [
    ("\n\nFinal Answer: \\boxed{", "", None),  # the cue alone is not an answer
    ("\n\nFinal Answer: \\boxed{", "}", None),  # an empty box
    ("\n\nFinal Answer: \\boxed{", "12", None),  # an unclosed box
    ("\n\nFinal Answer: \\boxed{", "12 and more", None),
    ("\n\nFinal Answer: \\boxed{", "12}", "12"),  # the cue's box, filled and closed by the model
    ("\n\nFinal Answer: \\boxed{", "1} so \\boxed{3}", "3"),
    ("\nFinal Answer:", "", None),  # s1's cue
    ("\nFinal Answer:", " \\boxed{", None),
    ("\nFinal Answer:", " 12", "12"),
    ("\nFinal Answer:", " \\boxed{12}", "12"),
    ("", "Final Answer: \\boxed{}", None),  # the model's own empty box is no answer either
])
def test_a_forced_ends_cue_is_never_graded(cue, generated, expected):
    """Defect 5: a forced end's cue must not be extracted as the answer."""
    r = BudgetResult(8, 8, True, 0, [], cue, generated, "stop")
    assert extract_math(r.answer_text, len(r.cue)) == expected


def test_choice_letters_come_from_the_model():
    assert extract_letter("\n\nFinal Answer: ", 4, len("\n\nFinal Answer: ")) is None
    assert extract_letter("\nFinal Answer: (A)", 4, len("\nFinal Answer:")) == "A"
    assert extract_letter("Answer: C\n\nFinal Answer: ", 4, len("Answer: C\n\nFinal Answer: ")) is None


def test_eval_records_no_answer_for_an_empty_forced_box(scripted, tmp_path):
    """End to end: a model that closes the cue's box at once scores no_answer, not ok."""
    from prunescale.api import evaluate
    from prunescale.config import EvalSpec

    folder = scripted("qwen3", answer="")
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"question": "What is 6 times 7?", "answer": "42"}) + "\n")
    run = evaluate(EvalSpec(model=str(folder), benchmark=f"jsonl:{bench}", budgets=[3], out=tmp_path / "run"),
                   log=lambda _m: None, progress=False)
    (row,) = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert row["forced_end"] and row["answer"].endswith("\\boxed{}") and row["status"] == "no_answer"
    assert json.loads((run / "summary.json").read_text())["budgets"][0]["no_answer_rate"] == 1.0


# -- the eval run on a real-format model --------------------------------------------------------------


def test_eval_of_an_s1_folder_records_format_prompt_and_sampling(scripted, tmp_path):
    from prunescale.api import evaluate
    from prunescale.config import EvalSpec

    folder = scripted("s1", NAMES["s1"])
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps({"id": f"i{k}", "question": "What is 6 times 7?", "answer": "42"}) + "\n"
                             for k in range(2)))
    spec = EvalSpec(model=str(folder), benchmark=f"jsonl:{bench}", budgets=[3, 5, 6, 12], temperature=0.6,
                    top_p=0.95, top_k=20, min_p=0.05, seeds=[7], out=tmp_path / "run")
    run = evaluate(spec, log=lambda _m: None, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["format"]["name"] == "s1" and summary["format"]["source"] == "folder name s1.1-scripted"
    tok = AutoTokenizer.from_pretrained(folder)
    assert summary["format"]["eos_ids"] == [tok.convert_tokens_to_ids("<|im_end|>"),
                                            tok.convert_tokens_to_ids("<|endoftext|>")]
    assert summary["prompt_first_item"].endswith("<|im_start|>assistant\n<|im_start|>think")
    sampling = {k: summary["sampling"][k] for k in ("engine", "temperature", "top_p", "top_k", "min_p", "seeds")}
    assert sampling == {"engine": "hf", "temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.05, "seeds": [7]}
    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    by_budget = {r["budget"]: r for r in rows if r["item_id"] == "i0"}
    assert [by_budget[b]["forced_end"] for b in (3, 5, 6, 12)] == [True, True, False, False]
    assert by_budget[5]["answer"] == "\nFinal Answer: \\boxed{42}" and by_budget[5]["correct"]
    assert by_budget[6]["answer"] == "\n\\boxed{42}" and by_budget[6]["thinking"] == "ABCDE"
    assert all(r["correct"] for r in rows)


# -- the vllm engine's stopping rules (fake LLM; the real one in test_vllm_optin.py) -------------------


class _FakeLLM:
    """Answers like vLLM would without stop sequences: the scripted model's greedy tokens up to max_tokens,
    stopping only at stop token ids; ``text_stop`` makes it report a stop-string hit after k tokens."""

    def __init__(self, model, text_stop: int | None = None) -> None:
        self.model, self.text_stop, self.calls = model, text_stop, 0

    def generate(self, prompts, params, use_tqdm=False):
        from types import SimpleNamespace

        outs = []
        for p, sp in zip(prompts, params):
            self.calls += 1
            ids = p["prompt_token_ids"]
            new = self.model.generate(torch.tensor([ids]), max_new_tokens=sp.max_tokens, do_sample=False,
                                      eos_token_id=list(sp.stop_token_ids) or None)[0, len(ids):].tolist()
            reason = "stop" if new and new[-1] in sp.stop_token_ids else "length"
            if self.text_stop is not None and self.calls == 1 and sp.stop:
                new, reason = new[: self.text_stop], "stop"
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=new, finish_reason=reason)]))
        return outs


def _fake_vllm(model, tok, **kw):
    from types import SimpleNamespace

    from prunescale.tts.engines.vllm import VLLMEngine

    engine = VLLMEngine.__new__(VLLMEngine)  # everything but the LLM and its SamplingParams class
    engine.llm, engine.tokenizer, engine.forward_tokens, engine.continuations = _FakeLLM(model, **kw), tok, 0, 0
    engine.sampling_params = SimpleNamespace
    return engine


def test_vllm_scan_applies_the_hf_stopping_rules():
    """Defect 2 (the rule itself, no vLLM needed): a multi-token stop sequence ends a reply at its first tokens."""
    from prunescale.tts.engines.vllm import scan

    req = Request([1], 10, stop_ids=(9,), stop_sequences=((4, 5, 6),))
    assert scan([1, 4, 5, 6, 7, 9], req) == Completion([1], None, (4, 5, 6))
    assert scan([1, 4, 5, 9], req) == Completion([1, 4, 5], 9)
    assert scan([4, 5], req, start=1) is None  # unfinished: the caller continues it
    assert scan(list(range(20, 40)), req) == Completion(list(range(20, 30)))


def test_vllm_engine_stops_at_multi_token_sequences(scripted):
    folder = scripted("llama")
    model, tok, fmt, mk = _load(folder)
    hf = HFEngine(model, tok.eos_token_id, 2)
    stop_ids, seqs = mk.thinking_stops()
    req = Request(prompt_ids(tok, ITEM, fmt), 20, stop_ids, stop_sequences=seqs)
    expect = hf.generate([req])[0]
    assert expect.stop_sequence == tuple(tok("</think>", add_special_tokens=False).input_ids)
    assert _fake_vllm(model, tok).generate([req]) == [expect]
    engine = _fake_vllm(model, tok, text_stop=3)  # a stop text matched in other token ids: continue
    assert engine.generate([req]) == [expect] and engine.continuations == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampling_on_cuda_matches_cpu(scripted):
    """Defect 3: sampling on CUDA used a CPU generator on device logits; now the draws are device-free."""
    folder = scripted("qwen3", "qwen3-coin", branch_from=2, answer_alt="7")
    seeds = [3, 4, 5, 6]
    cpu = sweep_rows(_hf(folder), folder, [2, 4, 9], seeds, temperature=1.0)
    assert sweep_rows(_hf(folder, "cuda"), folder, [2, 4, 9], seeds, temperature=1.0) == cpu


def test_study_eval_section_takes_the_sampling_knobs_and_markers(tmp_path, monkeypatch):
    """A study passes top-k, min-p and marker overrides to every eval it runs (one EvalSpec per stage)."""
    import prunescale.api as api
    from prunescale.study.runner import _evaluate
    from prunescale.study.spec import DenseVariant, load_spec

    yaml = tmp_path / "s.yaml"
    yaml.write_text("name: s\nmodel: tiny-reasoner\neval:\n  benchmarks: [tiny]\n  budgets: [4, 8]\n"
                    "  temperature: 0.6\n  top_p: 0.95\n  top_k: 20\n  min_p: 0.05\n"
                    "  think_open: '<|im_start|>think'\n  think_close: '<|im_start|>answer'\n")
    spec = load_spec(yaml)
    seen = []
    monkeypatch.setattr(api, "evaluate_all", lambda specs, **_: seen.extend(specs))
    _evaluate(spec, "tiny-reasoner", DenseVariant(name="dense"), [("tiny", tmp_path / "e")], lambda _m: None)
    (es,) = seen
    assert (es.top_k, es.min_p, es.top_p, es.temperature) == (20, 0.05, 0.95, 0.6)
    assert (es.think_open, es.think_close, es.label) == ("<|im_start|>think", "<|im_start|>answer", "dense")


def test_cli_eval_of_a_markerless_model_prints_the_notice_once(scripted, tmp_path):
    from typer.testing import CliRunner

    from prunescale.cli import app

    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"question": "What is 6 times 7?", "answer": "42"}) + "\n")
    result = CliRunner().invoke(app, ["eval", "--model", str(scripted("llama")), "--benchmark", f"jsonl:{bench}",
                                      "--budgets", "4,20", "--top-k", "5", "--temperature", "1.0", "--out",
                                      str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("has no thinking markers of its own") == 1
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [(r["forced_end"], r["correct"]) for r in rows] == [(True, True), (False, True)]


def test_a_plain_text_stop_has_the_ids_a_model_writes_mid_text():
    """A SentencePiece tokenizer prepends "▁" to a string's start: "</think>" alone is ▁ </ think >, but a
    model writes </ think > inside its text, so a stop of the first form would never match."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from prunescale.tts.forcing import Markers
    from prunescale.tts.prompting import FORMATS

    pieces = ["<unk>", "<s>", "</s>", "▁", "</", "think", ">", "\n", "A", "▁A"]
    tk = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=0))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    alone = tok.convert_ids_to_tokens(tok("</think>", add_special_tokens=False).input_ids)
    written = tok.convert_ids_to_tokens(tok("A\n</think>", add_special_tokens=False).input_ids)
    assert alone == ["▁", "</", "think", ">"] and written[-3:] == ["</", "think", ">"]
    mk = Markers(tok, FORMATS["think"])
    assert tok.convert_ids_to_tokens(list(mk.stop)) == ["</", "think", ">"]
    assert mk.thinking_stops()[1] == (mk.stop,)
