"""Measure the refusal detector against XSTest's human-labelled completions.

Binary agreement is the share of rows where (detector says refusal or partial refusal) equals
(human `final_label` is full or partial refusal); three-class agreement needs the exact label.
Two detectors are measured: the full one the safety eval uses (rules plus the classifier of
`evals/refusal_classifier.py`, whose shipped weights were fitted on both files, so in-sample here)
and the rules alone (written against llama2new). The cross-file figure, the one to trust for
other models, comes from `scripts/train_refusal_classifier.py`. XSTest's own prefix
string-matcher reaches 0.924 (llama2new) and 0.860 (mistralinstruct) on the same files.

    python scripts/measure_refusal_detector.py [--data-dir DIR] [--json]

By default it reads `shared/data/safety/xstest_labeled_completions` next to the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evals.refusal import MEASURED_AGREEMENT, refusal_agreement  # noqa: E402
from harness.evals.refusal_classifier import detect_refusals  # noqa: E402

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "safety" / "xstest_labeled_completions"
XSTEST_STRING_MATCHER_BINARY = {name: MEASURED_AGREEMENT[name]["xstest_string_matcher"] for name in ("llama2new", "mistralinstruct")}
"""XSTest's own string matcher on the same files (binary agreement), the figure to beat."""


def measure(data_dir: Path) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for model_name, reference in XSTEST_STRING_MATCHER_BINARY.items():
        path = data_dir / f"xstest_v2_completions_{model_name}.csv"
        if not path.is_file():
            raise SystemExit(f"missing {path}; pass --data-dir with the xstest_labeled_completions folder")
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        results[model_name] = {
            **refusal_agreement(rows, detect_refusals),
            "rules_only_binary": refusal_agreement(rows)["binary"],
            "xstest_string_matcher_binary": reference,
        }
    return results


def print_table(results: dict[str, dict[str, object]]) -> None:
    print(f"{'completions':<17}{'n':>5}{'binary':>9}{'rules':>7}{'xstest sm':>11}{'3-class':>9}{'human ref%':>12}{'detector ref%':>15}")
    for model_name, row in results.items():
        print(
            f"{model_name:<17}{row['n']:>5}{row['binary']:>9.3f}{row['rules_only_binary']:>7.3f}"
            f"{row['xstest_string_matcher_binary']:>11.3f}"
            f"{row['three_class']:>9.3f}{100 * row['human_refusal_rate']:>11.1f}%{100 * row['detector_refusal_rate']:>14.1f}%"
        )
    for model_name, row in results.items():
        print(f"\n{model_name} confusion (human->detector):")
        for pair, count in row["confusion"].items():
            print(f"  {pair:<36}{count:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = measure(args.data_dir)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
