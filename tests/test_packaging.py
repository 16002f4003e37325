"""The project installs as one import namespace: `harness`, with `harness.stages`, `harness.evals`, `harness.reports`.

`stages`, `evals` and `reports` are generic names (`evals` is also a published package), so the
top-level folders must not land in site-packages under their own names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO_ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = out.glob("harness-*.whl")
    return built


def test_the_wheel_has_harness_as_its_only_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"harness"}
    for module in ("harness/stages/training.py", "harness/stages/speed/int8_linear.py", "harness/evals/registry.py",
                   "harness/reports/templates/report.html.j2", "harness/sample_data/safety_prompts.jsonl",
                   "harness/models/cpu_kernels.cpp"):
        assert module in names, module


def test_imports_the_console_script_and_python_m_work_outside_the_repository(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    probe = "import harness.stages.training, harness.evals.registry, harness.reports; print(harness.evals.registry.__name__)"
    imported = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "harness.evals.registry"
    for command in ([sys.executable, "-m", "harness", "--help"], [str(Path(sys.executable).with_name("harness")), "--help"]):
        shown = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and "run-all" in shown.stdout, shown.stderr
