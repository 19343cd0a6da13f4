# The two set-up commands of README.md, and the benchmarks.
.PHONY: demo test bench bench-reconcile bench-pipeline bench-convex bench-images bench-e2e images

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench: bench-reconcile bench-pipeline bench-convex bench-images

bench-reconcile:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.reconcile

bench-pipeline:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.pipeline

bench-convex:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.convex

bench-images:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.images

# The pause, runner and operator image archives (cached); prints their paths.
images:
	scripts/bootstrap.sh
	.venv/bin/python -m images.build

bench-e2e:
	scripts/bootstrap.sh
	.venv/bin/python -m bench.e2e
