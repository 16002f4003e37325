"""The benchmark's pure parts: the FLOP count behind the roofline share, and the target checks."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks.report import markdown, targets
from benchmarks.training import forward_flops_per_token


def test_forward_flops_count_every_matmul_weight_twice_plus_attention():
    config = SimpleNamespace(
        hidden_size=4, num_attention_heads=2, head_dim=2, num_key_value_heads=1, intermediate_size=8, num_hidden_layers=3, vocab_size=10
    )
    # per layer: q and o 4x4 each, k and v 4x2 each, gate/up/down 4x8 each = 16+16+8+8+96 = 144 weights
    weights = 3 * 144 + 4 * 10
    attention = 2 * 3 * 5 * 2 * 2
    assert forward_flops_per_token(config, seq_len=5) == 2 * weights + attention


def _results(resident_int8: float) -> dict:
    machine = {"cpu": "cpu", "cores": 2, "flags": ["avx2"], "versions": {"torch": "x"}}
    memory = [
        {"base": "int8", "resident_mb": resident_int8, "first_load_mb": resident_int8 + 100, "footprint_mb": 200},
        {"base": "fp32", "resident_mb": 500.0, "first_load_mb": 600.0, "footprint_mb": 500},
    ]
    end_to_end = {"first_s": 100.0, "second_s": 12.0, "ratio": 0.12, "stages": []}
    return {"date": "2026-11-24", "machine": machine, "memory": memory, "end_to_end": end_to_end}


def _holding(results: dict) -> dict[str, bool]:
    return {name: ok for name, _, ok in targets(results)}


def test_targets_follow_the_measurements():
    memory_target = "8-bit base < half the resident memory of the fp32 base"
    assert _holding(_results(resident_int8=200.0)) == {
        memory_target: True,
        "second run-all with nothing changed < 10% of the first": False,
    }
    assert _holding(_results(resident_int8=260.0))[memory_target] is False


def test_training_target_is_judged_on_the_default_setting_of_every_stage():
    def row(stage, base, compute, share):
        return {"stage": stage, "base": base, "compute": compute, "roofline_share": share}

    training = [row("domain", "int8", "bf16 autocast", 0.45), row("instruct", "int8", "bf16 autocast", 0.30), row("domain", "fp32", "fp32", 0.60)]
    ((name, measured, holds),) = targets({"training": training})
    assert not holds and "instruct 30%" in measured and "best setting 60%" in measured
    training[1]["roofline_share"] = 0.41
    assert targets({"training": training})[0][2]


def test_markdown_marks_missed_targets():
    text = markdown(_results(resident_int8=260.0))
    assert "| 8-bit base < half the resident memory of the fp32 base | 0.52x" in text
    assert text.count("**no**") == 2
