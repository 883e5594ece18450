"""The Python API that the CLI mirrors, one module per stage. Each function takes a validated spec (or plain,
typed arguments) and writes files through one output-folder transaction (:mod:`.output`).

* :mod:`.pruning` — unstructured pruning (:func:`apply_spec`, the one path from a spec to a pruned model)
  and allocation previews;
* :mod:`.structured` — layer removal;
* :mod:`.quantize` — weight quantization after pruning or on a saved folder;
* :mod:`.loading` — a model with its calibration data;
* :mod:`.tune` — allocation knobs chosen on held-out data;
* :mod:`.evaluation` — accuracy against thinking budget, and perplexity;
* :mod:`.data` — named models and local copies of hub data.
"""

from prunescale.api.data import fetch_data, list_benchmarks, list_models
from prunescale.api.evaluation import evaluate, evaluate_all, ppl
from prunescale.api.output import commit_out, prepare_out, staged
from prunescale.api.pruning import allocation_table, apply_spec, prune_unstructured
from prunescale.api.quantize import quantize_folder, quantize_loaded
from prunescale.api.structured import matched_block_count, prune_structured, smoke_check
from prunescale.api.tune import parse_grid, tune_allocation
from prunescale.tts.forcing import eos_ids

prune = prune_unstructured  # the name `prunescale prune` has for the unstructured case

__all__ = [
    "allocation_table", "apply_spec", "commit_out", "eos_ids", "evaluate", "evaluate_all", "fetch_data",
    "list_benchmarks", "list_models", "matched_block_count", "parse_grid", "ppl", "prepare_out", "prune",
    "prune_structured", "prune_unstructured",
    "quantize_folder", "quantize_loaded", "smoke_check", "staged", "tune_allocation",
]
