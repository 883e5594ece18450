"""The test-time-scaling engine: hf decoding, budget forcing, prefix reuse, the eval run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.cli import app
from prunescale.toy.tokenizer import build_tokenizer
from prunescale.tts.engines.base import Completion, Request
from prunescale.tts.engines.hf import HFEngine
from prunescale.tts.forcing import Markers, Policy, answer_phase, think
from prunescale.tts.metrics import cov_at_k, maj_at_k, pass_at_k

TOK = build_tokenizer()
CLOSE = TOK.convert_tokens_to_ids("</think>")


def markers(stop: int = CLOSE) -> Markers:
    """The tiny reasoner's format, thinking stopped by token ``stop`` (a character of the tokenizer)."""
    from prunescale.tts.prompting import ThinkFormat

    return Markers(TOK, ThinkFormat("test", "<think>\n", "</think>", TOK.decode([stop])))


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen3", vocab=len(TOK))


def _prompts(n=5):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(5, 50, (int(L),), generator=g).tolist() for L in torch.randint(3, 12, (n,), generator=g)]


def test_hf_engine_greedy_equals_generate(model):
    engine = HFEngine(model, pad_id=0, batch_size=3)
    reqs = [Request(p, max_new_tokens=m, stop_ids=[7]) for p, m in zip(_prompts(), (10, 3, 12, 6, 8))]
    for r, out in zip(reqs, engine.generate(reqs)):
        ref = model.generate(torch.tensor([r.prompt_ids]), max_new_tokens=r.max_new_tokens, do_sample=False,
                             eos_token_id=7, pad_token_id=0)[0, len(r.prompt_ids):].tolist()
        assert out.ids == (ref[: ref.index(7)] if 7 in ref else ref)
        assert out.stopped == (7 in ref)
        assert len(out.ids) <= r.max_new_tokens


def test_seeded_sampling_ignores_batch_and_budget(model):
    engine = HFEngine(model, pad_id=0, batch_size=4)
    p = _prompts()
    alone = engine.generate([Request(p[0], 12, seed=5, temperature=1.0)])[0].ids
    mixed = engine.generate([Request(p[1], 4, seed=9), Request(p[0], 6, seed=5), Request(p[2], 9, seed=1)])[1].ids
    assert alone[:6] == mixed
    other_seed = engine.generate([Request(p[0], 12, seed=6, temperature=1.0)])[0].ids
    assert other_seed != alone


def _reference(model, r: Request) -> tuple[list[int], bool]:
    stops = list(r.stop_ids) or [999]
    ref = model.generate(torch.tensor([r.prompt_ids]), max_new_tokens=r.max_new_tokens, do_sample=False,
                         eos_token_id=stops, pad_token_id=0)[0, len(r.prompt_ids):].tolist()
    cut = next((i for i, t in enumerate(ref) if t in stops), None)
    return (ref if cut is None else ref[:cut]), cut is not None


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_continuous_batching_refills_and_equals_generate(arch):
    """More requests than slots, mixed lengths: rows leave and waiting ones are merged in mid-flight."""
    model = tiny_model(arch, vocab=len(TOK))
    engine = HFEngine(model, pad_id=0, batch_size=4)
    assert engine.continuous
    g = torch.Generator().manual_seed(1)
    budgets = torch.randint(1, 20, (14,), generator=g).tolist()
    reqs = [Request(p, m, stop_ids=[7, 11]) for p, m in zip(_prompts(14), budgets)]
    outs = engine.generate(reqs)
    for r, out in zip(reqs, outs):
        ids, stopped = _reference(model, r)
        assert (out.ids, out.stopped) == (ids, stopped)
    assert engine.forward_tokens < sum(len(r.prompt_ids) + r.max_new_tokens for r in reqs) * 1.5


def test_sliding_window_models_run_fixed_batches():
    """Sliding-window cache layers cannot be merged: the engine falls back to fixed batches, still exact."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(TOK), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      use_sliding_window=True, sliding_window=6, max_window_layers=1,
                      layer_types=["full_attention", "sliding_attention"], pad_token_id=0)
    model = Qwen2ForCausalLM(cfg).eval()
    engine = HFEngine(model, pad_id=0, batch_size=3)
    assert not engine.continuous
    assert engine.notes == ["cache layers DynamicSlidingWindowLayer (sliding window or other): fixed batches without "
                            "merging, prefix reuse or branches"]  # said, not silent (summary.json records it)
    reqs = [Request(p, m, stop_ids=[7]) for p, m in zip(_prompts(5), (10, 3, 12, 6, 8))]
    for r, out in zip(reqs, engine.generate(reqs)):
        assert out.ids == _reference(model, r)[0]
    from prunescale.tts.forcing import sweep  # follow-ups wait for the batch to drain, same results

    policy, prompts, cues = Policy([2, 6], wait_rounds=1, answer_budget=3), _prompts(4), ["\n\n"] * 4
    ref = answer_phase(engine, markers(7), think(engine, markers(7), prompts, [None] * 4, policy), [None] * 4, cues,
                       policy)
    assert sweep(engine, markers(7), prompts, [None] * 4, cues, policy)[1] == ref


@pytest.mark.parametrize("seeded", [False, True])
def test_prefix_reuse_is_exact_and_prefills_only_the_new_tokens(model, seeded):
    """Continuations under a prefix key (budget truncations + closer/cue, "Wait" rounds) reuse the kept KV
    and give exactly what a full prefill gives."""
    engine, plain = HFEngine(model, pad_id=0, batch_size=3), HFEngine(model, pad_id=0, batch_size=3, continuous=False)
    prompts = _prompts(6)
    keys = [object() for _ in prompts]
    seed = (lambda i: 100 + i) if seeded else (lambda i: None)
    first = engine.generate([Request(p, 14, seed=seed(i), prefix_key=k, keep_prefix=True)
                             for i, (p, k) in enumerate(zip(prompts, keys))])
    follow, reused = [], 0
    for i, (p, k, out) in enumerate(zip(prompts, keys, first)):
        kept = p + out.ids[: len(out.ids) if out.stopped else len(out.ids) - 1]  # a length-cut last token: unfed
        for cut in (0, 5, len(out.ids)):
            ctx = p + out.ids[:cut] + [9, 10]
            follow.append(Request(ctx, 6, seed=seed(i), prefix_key=k))
            reused += next((j for j, (a, b) in enumerate(zip(kept, ctx[:-1])) if a != b), min(len(kept), len(ctx) - 1))
    before = engine.forward_tokens
    got = engine.generate(follow)
    want = plain.generate([Request(r.prompt_ids, 6, seed=r.seed) for r in follow])
    assert [g.ids for g in got] == [w.ids for w in want]
    assert engine.store.reused_tokens == reused and engine.store.hits == len(follow)
    assert engine.forward_tokens - before < plain.forward_tokens - sum(len(r.prompt_ids) for r in follow) // 2
    engine.release(keys)
    assert not engine.store.entries and engine.store.bytes == 0


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("seeded", [False, True])
def test_branches_share_one_row_and_equal_separate_rows(attn, seeded):
    """Continuations submitted together under one prefix key (a trajectory's budgets) are branches of one
    row over the kept prefix, each seeing only its own truncation of it: the same tokens as each
    request prefilled alone, in fewer rows and forward calls."""
    model = tiny_model("qwen3", vocab=len(TOK))
    with torch.no_grad():  # weights 10× the default init: outputs hinge on what each token attends to
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(10)
    model.set_attn_implementation(attn)
    seed = (lambda i: 100 + i) if seeded else (lambda i: None)
    prompts = _prompts(5)
    keys = [object() for _ in prompts]
    follow: list[Request] = []

    def run(engine):
        first = engine.generate([Request(p, 16, seed=seed(i), prefix_key=k, keep_prefix=True)
                                 for i, (p, k) in enumerate(zip(prompts, keys))])
        if not follow:
            for i, (p, k, out) in enumerate(zip(prompts, keys, first)):
                for j, cut in enumerate((1, 5, 9, len(out.ids))):  # the answer cue differs in length per budget
                    follow.append(Request(p + out.ids[:cut] + [9, 10, 11][: 1 + j % 3], 3 + 2 * j, (7,),
                                          seed=seed(i), prefix_key=k))
        calls = engine.forward_calls
        return engine.generate(follow), engine.forward_calls - calls

    branched, single = HFEngine(model, pad_id=0, batch_size=3), HFEngine(model, pad_id=0, batch_size=3, max_branches=1)
    got, calls = run(branched)
    alone, single_calls = run(single)
    want = HFEngine(model, pad_id=0, batch_size=3, continuous=False).generate(
        [Request(r.prompt_ids, r.max_new_tokens, r.stop_ids, seed=r.seed) for r in follow])
    def view(outs):
        return [(o.ids, o.stopped) for o in outs]

    assert view(got) == view(want) == view(alone)
    assert branched.store.hits == single.store.hits == len(follow)
    assert calls < single_calls


def test_branches_need_a_kept_prefix_and_respect_the_cap(model, monkeypatch):
    """Without a kept prefix, requests under one key are rows of their own; at most ``max_branches``
    requests share a row."""
    engine = HFEngine(model, pad_id=0, batch_size=8, max_branches=2)
    p, key = _prompts(1)[0], object()
    reqs = [Request(p + [9] * j, 4, prefix_key=key) for j in range(1, 6)]
    assert [len(brs) for brs, _, _ in engine._rows([_branch(r) for r in reqs[:2]])] == [1, 1]  # nothing kept yet
    engine.generate([Request(p, 3, prefix_key=key, keep_prefix=True)])
    rows = engine._rows([_branch(r) for r in reqs[:2]])
    assert [len(brs) for brs, _, _ in rows] == [2] and rows[0][1] >= len(p)  # the prompt's KV, held once
    formed, real = [], engine._rows

    def spy(group):
        rows = real(group)
        formed.extend(len(brs) for brs, _, _ in rows)
        return rows

    monkeypatch.setattr(engine, "_rows", spy)
    outs = engine.generate(reqs)
    assert sorted(formed) == [1, 2, 2]
    want = HFEngine(model, pad_id=0, batch_size=8, continuous=False).generate([Request(r.prompt_ids, 4) for r in reqs])
    assert [o.ids for o in outs] == [w.ids for w in want]


def _branch(req):
    from prunescale.tts.engines.branches import Branch as _Branch

    return _Branch(req, None, 0)


def test_prefix_store_keeps_the_longest_and_evicts_by_bytes():
    from prunescale.tts.engines.prefix import PrefixStore

    def kv(n):
        return torch.zeros(1, 2, 2, n, 4)  # one layer, keys and values: 2 · n · 4 · 4 bytes each

    store = PrefixStore(max_bytes=2 * 2 * 20 * 4 * 4)  # room for 20 tokens
    store.put("a", [1, 2, 3, 4], kv(4))
    store.put("a", [1, 2], kv(2))  # shorter: the longer sequence stays
    assert store.lookup("a", [1, 2, 3, 9, 9])[0] == 3
    assert store.lookup("a", [1, 2, 3, 4])[0] == 3  # one token must still be fed
    assert store.lookup("a", [5, 1])[0] == 0 and store.lookup("b", [1, 2])[0] == 0
    store.put("b", list(range(10)), kv(10))
    store.put("c", list(range(8)), kv(8))  # 22 tokens: the least recently used ("a") goes
    assert list(store.entries) == ["b", "c"] and store.bytes == 2 * 2 * 18 * 4 * 4
    store.put("d", list(range(30)), kv(30))  # larger than the whole store: not kept
    assert "d" not in store.entries


class ScriptedEngine:
    """Thinks 'ab' then closes, every round; answers 'x'. Lets the state machine be checked exactly."""

    name = "scripted"

    def generate(self, requests):
        a, b, x = (TOK.convert_tokens_to_ids(c) for c in "abx")
        outs = []
        for r in requests:
            if r.stop_ids == (TOK.eos_token_id,):
                outs.append(Completion([x], TOK.eos_token_id))
            else:
                script = [a, b, CLOSE]
                ids = script[: r.max_new_tokens]
                stop = CLOSE if CLOSE in ids else None
                outs.append(Completion([t for t in ids if t != CLOSE], stop))
        return outs


@pytest.mark.parametrize("wait, min_budget, budget, expect_waits, expect_forced", [
    (0, 0, 10, 0, False),   # natural end after 2 tokens
    (2, 0, 50, 2, False),   # two forced Wait rounds, then natural end
    (0, 9, 50, 2, False),   # extend until ≥ 9 thinking tokens: 2 → 5(+Wait\n) ... counted cumulatively
    (3, 0, 4, 1, True),     # the budget runs out during the extension
    (0, 0, 0, 0, True),     # budget 0: closed at once
])
def test_state_machine_counts_rounds_and_respects_the_budget(wait, min_budget, budget, expect_waits, expect_forced):
    engine = ScriptedEngine()
    policy = Policy([budget], wait_rounds=wait, min_budget=min_budget, answer_budget=4)
    trajs = think(engine, markers(), [[1, 2]], [None], policy)
    (res,) = answer_phase(engine, markers(), trajs, [None], ["\n\n"], policy)[0]
    assert res.think_tokens <= budget
    assert res.waits == expect_waits
    assert res.forced_end is expect_forced
    thinking = TOK.decode(trajs[0].think_ids[: res.think_tokens])
    assert thinking.count("Wait") == expect_waits
    if min_budget and not expect_forced:
        assert res.think_tokens >= min_budget


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_prefix_reuse_sweep_equals_separate_runs(model, temperature):
    engine = HFEngine(model, pad_id=0, batch_size=8)
    prompts = _prompts(6)
    seeds = [None] * 6 if temperature == 0 else [11 * i + 1 for i in range(6)]
    budgets = [0, 3, 7, 15]
    sweep_policy = Policy(budgets, wait_rounds=1, answer_budget=5, temperature=temperature)
    sweep = answer_phase(engine, markers(), think(engine, markers(), prompts, seeds, sweep_policy), seeds,
                         ["\n\n"] * 6, sweep_policy)
    for bi, b in enumerate(budgets):
        single = Policy([b], wait_rounds=1, answer_budget=5, temperature=temperature)
        alone = answer_phase(engine, markers(), think(engine, markers(), prompts, seeds, single), seeds,
                             ["\n\n"] * 6, single)
        for s_row, a_row in zip(sweep, alone):
            s, a = s_row[bi], a_row[0]
            assert (s.think_tokens, s.forced_end, s.waits, s.answer_ids) == (a.think_tokens, a.forced_end, a.waits,
                                                                             a.answer_ids)
            assert s.think_tokens <= b


def _frequent_token(model, prompts):
    from collections import Counter

    outs = HFEngine(model, pad_id=0, batch_size=8).generate([Request(p, 12) for p in prompts])
    return Counter(t for o in outs for t in o.ids).most_common(1)[0][0]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("engine_kind", ["hf", "scripted"])
def test_sweep_with_follow_ups_equals_rounds_in_waves(model, temperature, engine_kind):
    """``sweep`` (each Wait round joins the running batch as its previous round ends; then the answers,
    a trajectory's budgets as branches of one row) gives exactly what rounds run in waves and one row
    per answer give (an engine without follow-ups or branches)."""
    from prunescale.tts.forcing import sweep

    prompts = _prompts(9)
    seeds = [None] * 9 if temperature == 0 else [7 * i + 3 for i in range(9)]
    stop = _frequent_token(model, prompts)  # closes often: natural ends, Wait rounds, shared contexts
    policy = Policy([0, 3, 7, 15], wait_rounds=1, answer_budget=5, temperature=temperature)
    cues = ["\n\n"] * 9

    def make():
        return HFEngine(model, pad_id=0, batch_size=4) if engine_kind == "hf" else ScriptedEngine()

    class Waves:  # the engine's plain generate only: rounds in waves, one row per request
        def __init__(self, engine):
            self.engine = engine
            if engine_kind == "hf":
                engine.max_branches = 1

        def generate(self, requests):
            return self.engine.generate(requests)

    waves = Waves(make())
    ref_trajs = think(waves, markers(stop), prompts, seeds, policy)
    ref = answer_phase(waves, markers(stop), ref_trajs, seeds, cues, policy)
    engine = make()
    branches: list[int] = []
    if engine_kind == "hf":
        real = engine._rows

        def spy(group):
            rows = real(group)
            branches.extend(len(brs) for brs, _, _ in rows)
            return rows

        engine._rows = spy
    trajs, got = sweep(engine, markers(stop), prompts, seeds, cues, policy)
    assert [(t.think_ids, t.natural_end, t.wait_at) for t in trajs] == [
        (t.think_ids, t.natural_end, t.wait_at) for t in ref_trajs
    ]
    assert any(t.waits for t in trajs)
    assert got == ref
    if engine_kind == "hf":
        assert any(t.natural_end is None for t in trajs)  # some forced ends too
        assert not engine.store.entries  # every trajectory's kept prefix released
        assert max(branches) > 1  # some trajectory's budgets were answered as branches of one row


def test_follow_ups_join_the_running_batch(model):
    """``on_done`` follow-ups are generated in the same call, numbered after the requests, exactly as if
    submitted alone."""
    engine = HFEngine(model, pad_id=0, batch_size=3)
    prompts = _prompts(4)
    seen, followed = [], []

    def on_done(i, out):
        seen.append(i)
        if i >= 4:
            return []
        followed.append(i)  # follow-up number k (index 4 + k) continues request i
        return [Request(prompts[i] + out.ids + [9], 4, seed=i)]

    outs = engine.generate([Request(p, 6, stop_ids=[7]) for p in prompts], on_done=on_done)
    assert len(outs) == 8 and sorted(seen) == list(range(8))
    alone = HFEngine(model, pad_id=0, batch_size=3).generate(
        [Request(prompts[i] + outs[i].ids + [9], 4, seed=i) for i in followed]
    )
    assert [o.ids for o in outs[4:]] == [a.ids for a in alone]


def test_metrics():
    assert pass_at_k(5, 0, 1) == 0 and pass_at_k(5, 5, 3) == 1
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert cov_at_k([False, True, False], 1) == 0 and cov_at_k([False, True, False], 2) == 1
    eq = lambda a, b: float(a) == float(b)  # noqa: E731
    assert maj_at_k(["1", "1.0", "2"], [True, True, False], 3, eq) == 1.0
    assert maj_at_k(["2", "1", "2"], [False, True, False], 3, eq) == 0.0
    assert maj_at_k([None, None], [False, False], 2, eq) == 0.0


runner = CliRunner()


def _saved(tmp_path: Path, model) -> Path:
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    TOK.save_pretrained(folder)
    return folder


def test_eval_run_folder_and_resume(tmp_path: Path, model):
    folder = _saved(tmp_path, model)
    out = tmp_path / "run"
    args = ["eval", "--model", str(folder), "--benchmark", "tiny", "--limit", "6", "--budgets", "0,4,8",
            "--samples", "2", "--temperature", "1.0", "--seeds", "3,4", "--answer-budget", "4", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 * 2 * 2 * 3
    needed = {"benchmark", "item_id", "variant", "budget", "seed", "sample", "thinking_tokens", "answer_tokens",
              "forced_end", "wait_rounds", "finish_reason", "extracted", "gold", "correct", "thinking", "answer"}
    assert needed <= set(rows[0])
    assert all(r["thinking_tokens"] <= r["budget"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert [b["budget"] for b in summary["budgets"]] == [0, 4, 8]
    assert {"pass@1", "pass@2", "maj@2", "cov@2"} <= set(summary["budgets"][0])
    assert summary["environment"]["packages"]["transformers"]
    # simulate a crash: keep the first 20 lines and half of the 21st, then resume
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    (out / "samples.jsonl").write_text("".join(lines[:20]) + lines[20][:15])
    (out / "summary.json").unlink()
    assert runner.invoke(app, args).exit_code == 0
    again = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    key = lambda r: (r["item_id"], r["seed"], r["sample"], r["budget"])  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, rows))  # nothing lost, nothing duplicated
    assert {key(r): r["answer"] for r in again} == {key(r): r["answer"] for r in rows}


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "mmlu", "--budgets", "0,4"], "unknown benchmark"),
    (["--benchmark", "tiny", "--budgets", "4,4"], "budgets repeat"),
    (["--benchmark", "tiny", "--budgets", "-1,4"], "non-negative"),
    (["--benchmark", "tiny", "--budgets", "a"], "comma-separated integers"),
    (["--benchmark", "tiny", "--budgets", "4", "--answer-budget", "0"], "must be ≥ 1"),
    (["--benchmark", "tiny", "--budgets", "4", "--samples", "0"], "must be ≥ 1"),
    (["--benchmark", "tiny", "--budgets", "4", "--temperature", "-1"], "temperature must be ≥ 0"),
    (["--benchmark", "tiny", "--budgets", "4", "--samples", "4"], "identical samples"),
    (["--benchmark", "tiny", "--budgets", "4", "--engine", "vllm"], "vllm"),
    (["--benchmark", "jsonl:/no/such.jsonl", "--budgets", "4"], "not found"),
])
def test_bad_eval_input(tmp_path: Path, model, args, message):
    folder = _saved(tmp_path, model)
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--model", str(folder), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not out.exists()


def test_malformed_jsonl_names_the_line(tmp_path: Path, model):
    folder = _saved(tmp_path, model)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"question": "q", "answer": "1"}\nnot json\n')
    result = runner.invoke(app, ["eval", "--model", str(folder), "--benchmark", f"jsonl:{bad}", "--budgets", "4",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "b.jsonl:2" in result.stderr


def test_multi_token_stop_sequences(model):
    engine = HFEngine(model, pad_id=0, batch_size=2)
    p = _prompts(1)[0]
    free = engine.generate([Request(p, 10)])[0].ids
    seq = tuple(free[3:5])
    out = engine.generate([Request(p, 10, stop_sequences=(seq,))])[0]
    first = next(i for i in range(len(free) - 1) if tuple(free[i : i + 2]) == seq)
    assert out.ids == free[:first] and out.stop_sequence == seq and out.stopped


class EosInThinkingEngine(ScriptedEngine):
    """Writes 'ab' and ends the whole reply (EOS) without ever closing its thinking."""

    def generate(self, requests):
        a, b, x = (TOK.convert_tokens_to_ids(c) for c in "abx")
        return [Completion([x], TOK.eos_token_id) if r.stop_ids == (TOK.eos_token_id,) and not r.stop_sequences
                and r.prompt_ids[-1] != TOK.eos_token_id and r.max_new_tokens == 4
                else Completion([a, b], TOK.eos_token_id) for r in requests]


def test_eos_inside_thinking_is_asked_for_an_answer():
    engine = EosInThinkingEngine()
    policy = Policy([1, 10], answer_budget=4)
    trajs = think(engine, markers(), [[1, 2]], [None], policy)
    assert trajs[0].hit_eos and trajs[0].natural_end == 2
    short, long = answer_phase(engine, markers(), trajs, [None], ["\n\n"], policy)[0]
    assert short.forced_end and short.think_tokens == 1
    assert not long.forced_end and long.think_tokens == 2 and long.answer_text == "\n\nx"


def _reference_probs(logits, t, k, p, m):
    """The filters written out with numpy, one row: temperature, min-p, top-k, top-p (vLLM's order/rules)."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64) / t
    probs = np.exp(x - x.max())
    probs /= probs.sum()
    keep = probs >= m * probs.max() if m > 0 else np.ones_like(probs, bool)
    if k > 0:
        kth = np.sort(np.where(keep, x, -np.inf))[::-1][k - 1]
        keep &= x >= kth
    if p < 1:
        q = np.where(keep, np.exp(x - x.max()), 0.0)
        q /= q.sum()
        order = np.argsort(q, kind="stable")  # ascending: drop the low tail whose mass stays within 1 - p
        cum = np.cumsum(q[order])
        drop = cum <= 1 - p
        drop[-1] = False
        keep[order[drop]] = False
    out = np.where(keep, np.exp(x - x.max()), 0.0)
    return out / out.sum()


@pytest.mark.parametrize("t, k, p, m", [
    (1.0, 0, 1.0, 0.0), (0.7, 0, 1.0, 0.0), (1.0, 2, 1.0, 0.0), (1.0, 0, 0.8, 0.0), (1.0, 0, 1.0, 0.3),
    (0.6, 3, 0.95, 0.05), (1.3, 1, 0.5, 0.0),
])
def test_sampling_filters_equal_their_formula(t, k, p, m):
    from prunescale.tts.engines.sampling import filtered_probs

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    got = filtered_probs(logits, torch.full((2,), t), torch.full((2,), k), torch.full((2,), p), torch.full((2,), m))
    for row in range(2):
        assert got[row].numpy() == pytest.approx(_reference_probs(logits[row].tolist(), t, k, p, m), abs=1e-6)


def test_hand_sized_filter_cases_and_the_draw():
    from prunescale.tts.engines.sampling import draw, filtered_probs

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    one = lambda v: torch.tensor([v])  # noqa: E731
    keep = lambda **kw: (filtered_probs(logits, one(1.0), one(kw.get("k", 0)), one(kw.get("p", 1.0)),  # noqa: E731
                                        one(kw.get("m", 0.0)))[0] > 0).tolist()
    assert keep(k=2) == [True, True, False, False]
    assert keep(p=0.75) == [True, True, False, False]  # the tail 0.05 + 0.15 stays within 1 - p: it goes
    assert keep(p=0.85) == [True, True, True, False]  # only 0.05 stays within 0.15
    assert keep(m=0.35) == [True, True, False, False]  # below 0.35 × 0.5 = 0.175: 0.15 and 0.05 go
    assert keep(m=0.29) == [True, True, True, False]
    cdf_picks = draw(probs, torch.tensor([0.0])), draw(probs, torch.tensor([0.49])), draw(probs, torch.tensor([0.5]))
    assert [int(x) for x in cdf_picks] == [0, 0, 1]
    assert int(draw(probs, torch.tensor([0.999999]))) == 3


def test_a_uniform_that_rounds_up_to_the_total_never_draws_a_filtered_token():
    # 1 - 2⁻²⁶ is < 1 in float64 but 1.0 in float32: searchsorted then points past the vocabulary, and the
    # old cap at vocab - 1 drew token 3, which top-k = 2 had removed (found in review; ~1 draw in 10⁷).
    from prunescale.tts.engines.sampling import draw, filtered_probs

    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    one = lambda v: torch.tensor([v])  # noqa: E731
    probs = filtered_probs(logits, one(1.0), one(2), one(1.0), one(0.0))
    u = torch.tensor([1 - 2.0**-26], dtype=torch.float64)
    assert int(draw(probs, u)) == 1
    assert int(draw(torch.tensor([[0.0, 0.7, 0.3, 0.0, 0.0]]), torch.tensor([1.0]))) == 2


def test_an_attention_without_4d_masks_runs_without_branches_and_says_so(model):
    model.config._attn_implementation = "flash_attention_2"  # read at construction only; nothing runs here
    try:
        engine = HFEngine(model, pad_id=0)
    finally:
        model.config._attn_implementation = "sdpa"
    assert engine.max_branches == 1 and engine.continuous
    assert engine.notes == ["attention 'flash_attention_2' takes no custom 4-D mask: one row per budget's answer, "
                            "no branches"]
    assert HFEngine(model, pad_id=0).notes == []
