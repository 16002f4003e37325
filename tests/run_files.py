"""Checks on a run directory shared by the tests that kill, resume or distribute runs: nothing complete is
corrupt, no temporary is left, and results equal a reference run's (`assert_same_results`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from harness.models.checkpoints import adapter_fingerprint
from harness.run.manifest import TRAINING_RTOL, Manifest
from harness.run.results import EvalResult, read_samples

TRAINING_BASED_METRICS = {"heldout_perplexity", "heldout_bits_per_byte"}


def complete(run_dir: Path, pattern: str) -> list[Path]:
    """Matches of `pattern` outside hidden temporaries (pathlib's `*` also matches names starting with a dot)."""
    return [p for p in run_dir.glob(pattern) if not any(part.startswith(".") for part in p.relative_to(run_dir).parts)]


def temporaries(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".*") if p.name != ".lock")


def assert_nothing_complete_is_corrupt(run_dir: Path) -> None:
    """Every file or directory a reader would take as finished parses and matches its own fingerprints."""
    from safetensors.torch import load_file

    for path in complete(run_dir, "checkpoints/*/manifest.json"):
        manifest = Manifest.load(path.parent)
        if manifest.stage is not None:
            load_file(path.parent / "adapter_model.safetensors")
            assert adapter_fingerprint(path.parent) == manifest.adapter_fingerprint, path.parent
            assert (path.parent / "tokenizer.json").is_file(), path.parent
    for path in complete(run_dir, "merged/*/config.json"):
        json.loads(path.read_text())
        load_file(path.parent / "model.safetensors")
    for path in complete(run_dir, "results/*.json"):
        EvalResult.load(path)
    for path in complete(run_dir, "samples/*/*.jsonl"):
        assert read_samples(path), path
    for path in complete(run_dir, "cache/generations/*/*.json"):
        assert "text" in json.loads(path.read_text()), path
    for name in ("run.json", "config.yaml"):
        if (run_dir / name).exists():
            yaml.safe_load((run_dir / name).read_text())
    if (run_dir / "report.html").exists():
        assert (run_dir / "report.html").read_text().rstrip().endswith("</html>")


def training_based(name: str, metric: str) -> bool:
    """Numbers that come from trained weights through a sum of float losses: equal within TRAINING_RTOL.

    Everything else (replies, ROUGE, BERTScore, safety rates, hotline counts, the base model's numbers)
    must be identical to the last digit.
    """
    return name != "base" and metric in TRAINING_BASED_METRICS


def assert_equal(actual: float, expected: float, training_based: bool, what: str) -> None:
    if training_based:
        assert math.isclose(actual, expected, rel_tol=TRAINING_RTOL, abs_tol=0.0), f"{what}: {actual} vs {expected}"
    else:
        assert actual == expected, f"{what}: {actual} vs {expected}"


def assert_same_results(run_dir: Path, reference: Path, names: tuple[str, ...], trained: tuple[str, ...]) -> None:
    """Loss curves of `trained`, and metrics, deltas and per-item replies and values of `names`, equal to `reference`'s."""
    for arm in trained:
        mine, theirs = Manifest.load(run_dir / "checkpoints" / arm), Manifest.load(reference / "checkpoints" / arm)
        for curve in ("train_loss", "eval_loss"):
            got, want = getattr(mine, curve), getattr(theirs, curve)
            assert [p.step for p in got] == [p.step for p in want], f"{arm} {curve}"
            for a, b in zip(got, want):
                assert_equal(a.loss, b.loss, True, f"{arm} {curve} step {a.step}")
    for name in names:
        mine, theirs = EvalResult.load(run_dir / "results" / f"{name}.json"), EvalResult.load(reference / "results" / f"{name}.json")
        assert mine.metrics.keys() == theirs.metrics.keys(), name
        for metric, value in mine.metrics.items():
            want = theirs.metrics[metric]
            assert value.n == want.n, f"{name} {metric}"
            for field in ("value", "ci_low", "ci_high"):
                assert_equal(getattr(value, field), getattr(want, field), training_based(name, metric), f"{name} {metric} {field}")
        assert {m: set(d) for m, d in mine.deltas.items()} == {m: set(d) for m, d in theirs.deltas.items()}, name
        for metric, by_reference in mine.deltas.items():
            for ref, delta in by_reference.items():
                want = theirs.deltas[metric][ref]
                training = training_based(name, metric)
                for field in ("delta", "ci_low", "ci_high", "p_value"):
                    assert_equal(getattr(delta, field), getattr(want, field), training, f"{name} {metric} vs {ref} {field}")
        for eval_name in mine.evals:
            got = read_samples(run_dir / "samples" / name / f"{eval_name}.jsonl")
            want = read_samples(reference / "samples" / name / f"{eval_name}.jsonl")
            assert [(s.id, s.prompt, s.reference, s.output, s.flags) for s in got] == [
                (s.id, s.prompt, s.reference, s.output, s.flags) for s in want
            ], f"{name}/{eval_name}: greedy replies differ"
            for a, b in zip(got, want):
                assert a.values.keys() == b.values.keys()
                for key in a.values:
                    assert_equal(a.values[key], b.values[key], training_based(name, key), f"{name}/{eval_name} {a.id} {key}")
