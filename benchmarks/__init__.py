"""Performance benchmarks of the harness against naive baselines; run with `python -m benchmarks.run`."""
