"""The default config's promises, measured the way a user runs it (`-m slow`, about 9 minutes on 2 cores).

`harness run-all --config configs/default.yaml` trains all three arms on the embedded model and the
shipped data; domain adaptation must lower the held-out loss of its own stage and the held-out
perplexity of the eval suite, the latter with a 95% CI that excludes zero.

Run: `pytest -m slow tests/test_default_config.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.manifest import Manifest
from harness.run.results import EvalResult

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, embedded_model_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("default") / "run"
    command = [sys.executable, "-m", "harness", "run-all", "--config", "configs/default.yaml", "--output", str(run_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_every_arm_is_trained_and_evaluated(default_run):
    for arm in ("domain", "instruct-only", "instruct"):
        assert Manifest.load(default_run / "checkpoints" / arm).adapter_fingerprint, arm
    for name in ("base", "domain", "instruct-only", "instruct"):
        assert {"heldout_perplexity", "rougeL", "bertscore_f1", "refusal_rate_harmful", "crisis_referral_rate"} <= set(
            EvalResult.load(default_run / "results" / f"{name}.json").metrics
        ), name
    assert (default_run / "report.html").is_file()


def test_domain_stage_lowers_its_heldout_loss_below_the_base_models(default_run):
    losses = Manifest.load(default_run / "checkpoints" / "domain").eval_loss
    assert losses[0].step == 0, "the first point is the starting (base) model on the same windows"
    assert losses[-1].loss < losses[0].loss


def test_domain_lowers_heldout_perplexity_with_a_ci_that_says_so(default_run):
    domain = EvalResult.load(default_run / "results" / "domain.json")
    base = EvalResult.load(default_run / "results" / "base.json")
    assert domain.metrics["heldout_perplexity"].value < base.metrics["heldout_perplexity"].value
    delta = domain.deltas["heldout_perplexity"]["base"]
    assert delta.ci_high < 0 and delta.p_value < 0.05, delta
