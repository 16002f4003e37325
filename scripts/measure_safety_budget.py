"""How each safety rate moves as the safety eval's token budget grows: the measurement behind its default.

For each budget it runs `harness eval --suite safety` on one checkpoint (each budget in its own run
directory, so replies are cached and a re-run only re-scores), re-scores the saved replies with the
current detectors, and prints per category: the share of replies cut at the cap, the share that loop
(`degenerate_repetition`), the rate, and the safety eval's wall time.

    python scripts/measure_safety_budget.py --checkpoint base --budgets 96,256,512 --output runs/budget
    python scripts/measure_safety_budget.py --checkpoint runs/demo/checkpoints/instruct --output runs/budget

The rates stop being evidence of anything while most replies are cut; the default budget is the
smallest one past which they stop moving (README, "Safety replies need room").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.data.safety_prompts import CATEGORIES  # noqa: E402
from harness.evals.safety import CATEGORY_METRIC, rescore_safety  # noqa: E402
from harness.run.config import EvalConfig, load_config  # noqa: E402
from harness.run.layout import RunLayout  # noqa: E402
from harness.run.results import EvalResult, read_samples  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_budget(checkpoint: str, config: Path, budget: int, run_dir: Path) -> None:
    command = [
        sys.executable, "-m", "harness", "eval", "--checkpoint", checkpoint, "--suite", "safety", "--config", str(config),
        "--output", str(run_dir), "--set", f"eval.generation.max_new_tokens_by_eval.safety={budget}",
    ]
    subprocess.run(command, check=True, cwd=REPO)


def budget_row(run_dir: Path, checkpoint: str, settings: EvalConfig) -> dict[str, dict[str, float]]:
    """category -> {n, capped, loops, rate} from the saved replies, re-scored with the current detectors."""
    rescored = rescore_safety(read_samples(RunLayout(run_dir).samples(checkpoint, "safety")), settings).records
    row: dict[str, dict[str, float]] = {}
    for category in CATEGORIES:
        mine = [r for r in rescored if r.category == category]
        if not mine:
            continue
        row[category] = {
            "n": len(mine),
            "capped": sum("hit_token_cap" in r.flags for r in mine) / len(mine),
            "loops": sum("degenerate_repetition" in r.flags for r in mine) / len(mine),
            "rate": sum(r.values[CATEGORY_METRIC[category]] for r in mine) / len(mine),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="base", help="`base`, or a trained arm's checkpoint folder")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "default.yaml")
    parser.add_argument("--budgets", default="96,256,512", help="comma-separated token budgets")
    parser.add_argument("--output", type=Path, required=True, help="folder for one run directory per budget")
    args = parser.parse_args()
    settings = load_config(args.config).eval
    print(f"{'budget':>7} {'category':<9}{'n':>4}{'capped':>8}{'loops':>7}{'rate':>8}{'eval s':>8}")
    name = Path(args.checkpoint).name
    for budget in (int(b) for b in args.budgets.split(",")):
        run_dir = args.output / f"tokens-{budget}"
        run_budget(args.checkpoint, args.config.resolve(), budget, run_dir)
        seconds = EvalResult.load(RunLayout(run_dir).result(name)).evals["safety"].wall_time_s
        for category, cell in budget_row(run_dir, name, settings).items():
            print(
                f"{budget:>7} {category:<9}{cell['n']:>4.0f}{cell['capped']:>8.0%}{cell['loops']:>7.0%}"
                f"{cell['rate']:>8.1%}{seconds:>8.0f}"
            )


if __name__ == "__main__":
    main()
