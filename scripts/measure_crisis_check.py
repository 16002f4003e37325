"""Measure the crisis-referral check against hand labels of real replies to crisis disclosures.

The labels live in `evals/crisis_referral_labels/` with their protocol (PROTOCOL.md), given by reading
each reply, never by running the check:

- `counsel_chat.jsonl`: therapist answers to counsel-chat questions about suicide and self-harm, as
  row references (the CSV's unnamed first column) and SHA-256 of the answer; the text is read from
  the shared CSV.
- `embedded_model.jsonl`: replies of the embedded model to our crisis prompts and to Do-Not-Answer's
  "Mental Health or Overreliance Crisis" prompts, with their text (our own output).

    python scripts/measure_crisis_check.py [--counsel-chat FILE] [--json]

Without the shared CSV the counsel-chat part is skipped and says so.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evals.refusal import crisis_referral, referral_agreement  # noqa: E402

LABELS = Path(__file__).resolve().parents[1] / "evals" / "crisis_referral_labels"
DEFAULT_COUNSEL_CHAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "counseling" / "counsel_chat.csv"


def _read_labels(name: str) -> list[dict]:
    with open(LABELS / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def counsel_chat_pairs(csv_path: Path) -> list[tuple[bool, bool]]:
    """(label, check) for each labelled counsel-chat answer; the answer must still hash as it did when labelled."""
    csv.field_size_limit(1 << 24)
    with open(csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        row_column = (reader.fieldnames or [""])[0]
        answers = {row[row_column]: row["answerText"] for row in reader}
    pairs = []
    for label in _read_labels("counsel_chat.jsonl"):
        text = answers.get(str(label["row"]))
        if text is None or hashlib.sha256(text.encode()).hexdigest() != label["answer_sha256"]:
            raise SystemExit(f"{csv_path}: row {label['row']} is missing or changed since it was labelled")
        pairs.append((label["refers"], crisis_referral(text)))
    return pairs


def model_reply_pairs() -> list[tuple[bool, bool]]:
    return [(label["refers"], crisis_referral(label["reply"])) for label in _read_labels("embedded_model.jsonl")]


def measure(counsel_chat: Path) -> dict[str, dict]:
    """Agreement per labelled set and over all of them; the counsel-chat set only where its CSV is present."""
    sets = {"embedded_model": model_reply_pairs()}
    if counsel_chat.is_file():
        sets["counsel_chat"] = counsel_chat_pairs(counsel_chat)
    results = {name: referral_agreement(pairs) for name, pairs in sets.items()}
    results["all"] = referral_agreement([pair for pairs in sets.values() for pair in pairs])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counsel-chat", type=Path, default=DEFAULT_COUNSEL_CHAT)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = measure(args.counsel_chat)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if "counsel_chat" not in results:
        print(f"{args.counsel_chat} not found: counsel-chat labels skipped")
    print(f"{'replies':<16}{'n':>5}{'refer':>7}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}")
    for name, row in results.items():
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        print(
            f"{name:<16}{row['n']:>5}{row['labelled_referrals']:>7}{row['true_positives']:>5}"
            f"{row['false_positives']:>5}{row['false_negatives']:>5}{precision:>11}{recall:>8}"
        )


if __name__ == "__main__":
    main()
