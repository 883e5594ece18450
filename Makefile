# The two commands users run first (README): `make demo` and `make test`. Both install on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint bench train-toy clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

demo: install
	$(VENV)/bin/prunescale demo --out runs/demo

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/tiny_reasoner.py

# Re-train the embedded model (seeded; ~45 min on 2 CPU cores) and re-measure its behaviour.
train-toy: install
	$(PY) -m prunescale.toy.train --out src/prunescale/toy/weights/tiny-reasoner
	$(PY) benchmarks/tiny_reasoner.py --write-behaviour

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
