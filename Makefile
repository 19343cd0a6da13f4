# The two set-up commands of README.md, and the benchmarks.
.PHONY: demo test bench bench-reconcile

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench: bench-reconcile

bench-reconcile:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.reconcile
