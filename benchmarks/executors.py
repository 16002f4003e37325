"""`run-all` of a grid on one machine: the local executor with 2 torch threads vs Ray with 2 workers x 1 thread.

    python -m benchmarks.executors [--config configs/ablation.yaml] [--set KEY=VALUE ...] [--json FILE]

Both runs start from an empty run directory. The local executor trains and evaluates one node at a
time with 2 threads; the Ray executor runs a private 2-CPU Ray instance and gives each task one CPU,
so two independent nodes (seeds, grid points, evals) run side by side with one thread each. Prints
both wall times, their ratio, and how many metric values of the two runs differ (none should).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.end_to_end import timed_run_all
from harness.run.results import EvalResult

ROOT = Path(__file__).resolve().parents[1]
ONE_CPU_PER_TASK = "execution.resources={domain: {num_cpus: 1}, instruct: {num_cpus: 1}, eval: {num_cpus: 1}}"


def differing_metrics(run_dir: Path, reference: Path) -> list[str]:
    """`checkpoint/metric` for every metric value (value and interval) that is not the same in both runs."""
    differing = []
    for path in sorted((reference / "results").glob("*.json")):
        theirs, mine = EvalResult.load(path), EvalResult.load(run_dir / "results" / path.name)
        for metric, want in theirs.metrics.items():
            got = mine.metrics.get(metric)
            if got is None or (got.value, got.ci_low, got.ci_high) != (want.value, want.ci_low, want.ci_high):
                differing.append(f"{path.stem}/{metric}")
    return differing


def compare_executors(config: Path, options: list[str], root: Path) -> dict[str, object]:
    local = timed_run_all(config, root / "local", *options, env={"OMP_NUM_THREADS": "2"})
    ray = timed_run_all(config, root / "ray", *options, "--executor", "ray", "--set", ONE_CPU_PER_TASK, env={"OMP_NUM_THREADS": "1"})
    return {
        "local_2_threads_s": round(local, 1),
        "ray_2_workers_x_1_thread_s": round(ray, 1),
        "ray_over_local": round(ray / local, 3),
        "differing_metrics": differing_metrics(root / "ray", root / "local"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ablation.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="a config override, as for run-all")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    options = [item for override in args.sets for item in ("--set", override)]
    with tempfile.TemporaryDirectory(prefix="harness-executors-") as root:
        figures = compare_executors(args.config, options, Path(root))
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
