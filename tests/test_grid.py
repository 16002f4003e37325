"""Grids over settings and seed replicates: expansion, sharing, the dry run, and a tiny grid end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.dry_run import earlier_eval_seconds, saved_results
from harness.run.config import load_config
from harness.run.grid import grid_points
from harness.run.grid_results import GridResult
from harness.run.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
FIXTURE_RUN = REPO / "tests" / "fixtures" / "run_fixture"
PAIRED = [{"training.domain.learning_rate": 0.001, "lora.alpha": 8}, {"training.domain.learning_rate": 0.002, "lora.alpha": 16}]


def test_points_are_the_cartesian_product_and_a_paired_axis_moves_its_settings_together():
    points = grid_points({"lora.r": [4, 16], "schedule": PAIRED})
    assert [p.id for p in points] == ["p0", "p1", "p2", "p3"]
    assert points[1].settings == {"lora.r": 4, "training.domain.learning_rate": 0.002, "lora.alpha": 16}
    assert points[2].axes == {"lora.r": 16, "schedule": PAIRED[0]}


def test_nodes_with_identical_settings_are_shared():
    config = load_config(TINY, ["arms=[domain, instruct]", "grid={training.instruct.learning_rate: [0.001, 0.002]}", "seeds=[0, 1]"])
    plan = config.plan
    assert len(plan.members) == 2 * 2 * 2
    assert sorted(a.name for a in plan.lineage.arms if a.stage == "domain") == ["domain.p0.s0", "domain.p0.s1"]
    assert len(plan.lineage.arms) == 6, "the domain arm does not depend on the instruct learning rate: one per seed"
    assert {node: len(members) for node, members in plan.shared().items()} == {"domain.p0.s0": 2, "domain.p0.s1": 2}
    assert plan.node("instruct", "p1", 1) == "instruct.p1.s1"
    assert plan.lineage.arm("instruct.p1.s1").parent == "domain.p0.s1"
    assert config.arm_config("instruct.p1.s1").training.instruct.learning_rate == 0.002
    assert config.arm_config("domain.p0.s1").seed == 1


def test_without_a_grid_the_nodes_are_the_table():
    config = load_config(TINY)
    assert not config.plan.is_grid
    assert [a.name for a in config.lineage.arms] == [a.name for a in config.table.training_order()]


EVAL_AXIS = "grid={training.instruct.learning_rate: [0.001, 0.002], eval.generation.max_new_tokens: [8, 16]}"


def test_an_eval_axis_shares_every_node_and_measures_each_checkpoint_once_per_eval_setting():
    config = load_config(TINY, ["arms=[domain, instruct]", EVAL_AXIS])
    plan = config.plan
    assert [a.name for a in plan.lineage.arms] == ["domain.p0", "instruct.p0", "instruct.p2"], "eval settings train nothing"
    assert config.evaluation_names == [
        "base@e0", "domain.p0@e0", "instruct.p0@e0", "instruct.p2@e0", "base@e1", "domain.p0@e1", "instruct.p0@e1", "instruct.p2@e1",
    ]
    assert plan.result("base", "p1", 0) == "base@e1" and plan.result("instruct", "p3", 0) == "instruct.p2@e1"
    assert plan.evaluation("instruct.p2@e1").checkpoint == "instruct.p2"
    assert config.evaluation_config("instruct.p2@e1").eval.generation.max_new_tokens == 16
    assert config.evaluation_config("base@e0").eval.generation.max_new_tokens == 8
    assert config.arm_config("instruct.p2").training.instruct.learning_rate == 0.002
    pairs = plan.pairs_among(config.evaluation_names)
    assert ("instruct.p2@e1", "domain.p0@e1") in pairs and ("instruct.p0@e0", "base@e0") in pairs
    assert all(a.split("@")[1] == b.split("@")[1] for a, b in pairs), "a delta never mixes eval settings"


def test_one_eval_setting_keeps_the_node_names_as_results_names():
    config = load_config(TINY, ["arms=[domain]", "grid={eval.limit: [3]}"])
    assert config.evaluation_names == ["base", "domain"]
    assert config.evaluation_config("domain").eval.limit == 3 and config.eval.limit != 3


@pytest.mark.parametrize(
    "override, message",
    [
        ("grid={lora.rank: [4]}", r"grid.lora.rank: unknown key `lora.rank`"),
        ("grid={eval.limit: [0]}", r"grid.eval.limit: .*eval.limit"),
        ("grid={eval.nonsense: [1]}", r"grid.eval.nonsense: unknown key `eval.nonsense`"),
        ("grid={model.name: [x]}", r"grid.model.name: `model.name` is not per-arm"),
        ("grid={lora.r: []}", r"grid.lora.r: give at least one value"),
        ("seeds=[1, 1]", r"seeds: \[1, 1\] repeats a seed"),
    ],
)
def test_a_bad_grid_is_a_one_line_error(override, message):
    with pytest.raises(HarnessError, match=message):
        load_config(TINY, [override])


GRID = ["arms=[domain, instruct]", "grid={training.instruct.learning_rate: [0.001, 0.002]}", "seeds=[0, 1]",
        "eval.suite=[perplexity, similarity]"]


def _run_all(run_dir: Path, *extra: str, grid: list[str] = GRID) -> subprocess.CompletedProcess:
    sets = [item for override in grid for item in ("--set", override)]
    return subprocess.run(
        [sys.executable, "-m", "harness", "run-all", "--config", str(TINY), "--output", str(run_dir), *sets, *extra],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )


def test_the_dry_run_prints_the_plan_and_writes_nothing(tmp_path, embedded_model_dir):
    shown = _run_all(tmp_path / "run", "--dry-run", "--set", f"output_dir={tmp_path / 'runs'}")
    assert shown.returncode == 0, shown.stderr[-2000:]
    out = " ".join((shown.stdout + shown.stderr).split())
    assert "8 arm instances -> 6 trained node(s) (2 shared), 7 evaluated (base once)" in out
    assert "Eval time: not estimated (7 evaluation(s); no earlier evaluations under" in out
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_the_eval_estimate_reads_only_earlier_evaluations_that_ran_the_same_way(tmp_path):
    shutil.copytree(FIXTURE_RUN, tmp_path / "runs" / "earlier")
    config = load_config(FIXTURE_RUN / "config.yaml", [f"output_dir={tmp_path / 'runs'}"])
    results = saved_results(config.output_dir)
    saved = sorted(json.loads(p.read_text())["wall_time_s"] for p in (FIXTURE_RUN / "results").glob("*.json"))
    assert sorted(earlier_eval_seconds(config, results)) == saved
    assert earlier_eval_seconds(config.model_copy(update={"eval": config.eval.model_copy(update={"limit": 3})}), results) == []
    assert earlier_eval_seconds(load_config(FIXTURE_RUN / "config.yaml", [f"output_dir={tmp_path / 'runs'}", "eval.suite=[perplexity]"]), results) == []
    longer = load_config(FIXTURE_RUN / "config.yaml", [f"output_dir={tmp_path / 'runs'}", "eval.generation.max_new_tokens=256"])
    assert earlier_eval_seconds(longer, results) == [], "the similarity replies were 128 tokens long"


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory, embedded_model_dir):
    run_dir = tmp_path_factory.mktemp("grid") / "run"
    first = _run_all(run_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return run_dir


def test_a_tiny_grid_trains_each_distinct_node_once_and_reports_over_seeds(grid_run):
    trained = sorted(p.name for p in (grid_run / "checkpoints").iterdir() if p.name != "base")
    assert trained == ["domain.p0.s0", "domain.p0.s1", "instruct.p0.s0", "instruct.p0.s1", "instruct.p1.s0", "instruct.p1.s1"]
    assert len(list((grid_run / "results").glob("*.json"))) == 7
    splits = {Manifest.load(grid_run / "checkpoints" / node).data_fingerprints.get("counseling_split") for node in trained[2:]}
    assert len(splits) == 1 and None not in splits, "every seed trains on the run's one split; the test items never move"
    grid = GridResult.load(grid_run / "grid.json")
    cells = {(c.arm, c.reference, c.point, c.metric): c.delta for c in grid.cells}
    domain = cells[("domain", "base", "p0", "heldout_perplexity")]
    assert domain.n_replicates == 2 and len(domain.per_replicate) == 2
    assert domain.ci_low <= domain.value <= domain.ci_high
    assert cells[("instruct", "domain", "p1", "rougeL")].n_replicates == 2
    effects = {(e.arm, e.reference, e.axis, e.value, e.metric) for e in grid.main_effects}
    assert ("instruct", "base", "training.instruct.learning_rate", "0.002", "rougeL") in effects
    report = (grid_run / "report.md").read_text(encoding="utf-8")
    assert "## Grid" in report and "### Domain adaptation (domain vs base)" in report
    assert "better in" in report.split("## Grid")[1].split("## Summary")[0]
    html = (grid_run / "report.html").read_text(encoding="utf-8")
    assert '<section id="grid">' in html
    for page in (report, html):
        assert "<summary>Every node's values (7 checkpoints)</summary>" in page
        assert "<summary>Every node's paired deltas (" in page


def test_a_second_grid_run_reuses_every_node(grid_run):
    second = _run_all(grid_run)
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout + second.stderr
    assert out.count("checkpoint is up to date, skipping") == 6
    assert out.count("results are up to date, skipping") == 7
    assert json.loads((grid_run / "grid.json").read_text())["seeds"] == [0, 1]


def test_every_arm_has_its_mean_over_seeds_in_the_grid_results_and_the_report(grid_run):
    grid = GridResult.load(grid_run / "grid.json")
    values = {(v.arm, v.point, v.metric): v.value for v in grid.arm_values}
    instruct = values[("instruct", "p1", "heldout_perplexity")]
    assert instruct.n_replicates == 2 and instruct.p_value is None
    assert instruct.value == pytest.approx(sum(instruct.per_replicate) / 2)
    assert instruct.ci_low <= instruct.value <= instruct.ci_high
    report = (grid_run / "report.md").read_text(encoding="utf-8")
    assert "Per arm, mean over seeds" in report and "instruct @ p1" in report


EVAL_GRID = ["arms=[domain]", "grid={eval.generation.max_new_tokens: [4, 12]}", "eval.suite=[perplexity, similarity]"]


def test_a_grid_over_an_eval_setting_trains_once_and_scores_base_once_per_setting(tmp_path, embedded_model_dir):
    run_dir = tmp_path / "run"
    first = _run_all(run_dir, grid=EVAL_GRID)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["base", "domain.p0"]
    results = {p.stem: json.loads(p.read_text()) for p in (run_dir / "results").glob("*.json")}
    assert sorted(results) == ["base@e0", "base@e1", "domain.p0@e0", "domain.p0@e1"]
    for name, budget in [("base@e0", 4), ("base@e1", 12), ("domain.p0@e1", 12)]:
        assert results[name]["evals"]["similarity"]["details"]["max_new_tokens"] == budget
    assert results["base@e0"]["metrics"]["heldout_perplexity"] == results["base@e1"]["metrics"]["heldout_perplexity"]
    assert results["base@e0"]["metrics"]["rougeL"] != results["base@e1"]["metrics"]["rougeL"], "the budget changes the replies"
    assert set(results["domain.p0@e1"]["deltas"]["heldout_perplexity"]) == {"base@e1"}
    assert len({r["config_hash"] for r in results.values()}) == 1, "every evaluation belongs to the one run config"
    grid = GridResult.load(run_dir / "grid.json")
    effects = {(e.arm, e.axis, e.value, e.metric) for e in grid.main_effects}
    assert ("domain", "eval.generation.max_new_tokens", "12", "rougeL") in effects
    second = _run_all(run_dir, grid=EVAL_GRID)
    out = second.stdout + second.stderr
    assert second.returncode == 0 and out.count("checkpoint is up to date, skipping") == 1
    assert out.count("results are up to date, skipping") == 4
