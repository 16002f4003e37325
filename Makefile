# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the test suite).
.PHONY: setup demo test test-slow bench

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/harness run-all --config configs/default.yaml

test:
	scripts/setup.sh --browser
	.venv/bin/python -m pytest -q -n 2 --dist loadscope

test-slow: setup
	.venv/bin/python -m pytest -q -m slow

bench: setup
	.venv/bin/python -m benchmarks.run --json benchmarks/last_run.json
