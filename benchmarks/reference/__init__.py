"""Reference implementations run beside prunescale's own for parity benchmarks (each in a venv of its own)."""
