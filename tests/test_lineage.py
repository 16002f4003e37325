"""The lineage table: arms, parents and overrides as config data, and the run that follows from it.

The end-to-end test trains, with no code change, the three shapes a study needs beyond the classic
2x2: a second domain arm on another PDF with its own instruct child, an instruct arm with another
`lora.r`, and a chain domain -> domain2 -> instruct.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.fingerprint import sha256_file
from harness.run.config import load_config
from harness.run.lineage import Lineage
from harness.run.manifest import Manifest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
PACKAGE_FOLDERS = ("harness", "stages", "evals", "reports")
TABLE_MODULE = REPO / "harness" / "run" / "lineage.py"


def lineage(*rows: dict, comparisons: list[dict] | None = None) -> Lineage:
    return Lineage.model_validate({"arms": list(rows), "comparisons": comparisons or []})


def test_training_order_puts_every_parent_first_and_keeps_table_order_otherwise():
    table = lineage(
        {"name": "sft", "stage": "instruct", "parent": "domain2"},
        {"name": "domain2", "stage": "domain", "parent": "domain"},
        {"name": "domain", "stage": "domain"},
        {"name": "other", "stage": "instruct"},
    )
    assert [arm.name for arm in table.training_order()] == ["domain", "other", "domain2", "sft"]
    assert table.ancestors("sft") == ["domain", "domain2"]
    assert table.checkpoint_order() == ["base", "domain", "other", "domain2", "sft"]


def test_contrasts_are_each_arm_vs_base_vs_its_parent_and_the_named_ones():
    table = lineage(
        {"name": "d", "stage": "domain", "label": "Domain adaptation"},
        {"name": "i", "stage": "instruct", "parent": "d"},
        {"name": "io", "stage": "instruct"},
        comparisons=[{"arm": "i", "reference": "io", "label": "The domain stage before SFT"}],
    )
    pairs = [(c.arm, c.reference) for c in table.contrasts()]
    assert pairs == [("d", "base"), ("i", "base"), ("i", "d"), ("io", "base"), ("i", "io")]
    labels = {(c.arm, c.reference): c.label for c in table.contrasts()}
    assert labels[("d", "base")] == "Domain adaptation (d vs base)"
    assert labels[("i", "io")] == "The domain stage before SFT (i vs io)"
    assert table.stages_between("i", "io") == {"domain", "instruct"}
    assert table.stages_between("i", "d") == {"instruct"}
    assert table.pairs_among(["base", "d", "elsewhere"]) == [("d", "base"), ("elsewhere", "base")]


def test_the_classic_names_pick_rows_of_the_classic_table():
    config = load_config(TINY, ["arms=[domain, instruct]"])
    assert [(a.name, a.stage, a.parent) for a in config.arms] == [("domain", "domain", "base"), ("instruct", "instruct", "domain")]
    assert config.comparisons == [], "the classic named contrast needs instruct-only, which is not in the table"


@pytest.mark.parametrize(
    "arms, message",
    [
        ("[{name: a, stage: domain, parent: nowhere}]", r"arms\[0\] \(a\): parent 'nowhere' is neither `base` nor an arm"),
        ("[{name: a, stage: domain, parent: b}, {name: b, stage: domain, parent: a}]", r"parents lead back to itself"),
        ("[{name: a, stage: domain}, {name: a, stage: instruct}]", r"arms: a appears more than once"),
        ("[{name: a, stage: domain, overrides: {lora.rank: 4}}]", r"arms\[0\] \(a\)\.overrides: unknown key `lora.rank`"),
        ("[{name: a, stage: domain, overrides: {eval.limit: 4}}]", r"`eval.limit` is an eval setting.*vary eval settings on a grid axis \(grid: \{eval.limit: \[...\]\}\)"),
        ("[{name: a, stage: domain, overrides: {training.domain.learning_rate: -1}}]", r"arms\[0\] \(a\)\.overrides: key `training.domain.learning_rate`"),
        ("[{name: base, stage: domain}]", r"`base` is the untrained start model"),
        ("[{name: a, stage: pretrain}]", r"arms.0.stage"),
        ("[unknown-arm]", r"'unknown-arm' is not a classic arm"),
    ],
)
def test_a_bad_table_is_a_one_line_error_naming_the_key(arms, message):
    with pytest.raises(HarnessError, match=message) as caught:
        load_config(TINY, [f"arms={arms}"])
    assert "\n" not in str(caught.value)


def test_a_comparison_must_name_known_checkpoints():
    with pytest.raises(HarnessError, match=r"comparisons\[0\]: 'ghost' is not `base` or an arm"):
        load_config(TINY, ["comparisons=[{arm: ghost, reference: base, label: x}]"])


def test_override_paths_resolve_against_the_yaml_file_folder(tmp_path):
    config_file = tmp_path / "sub" / "run.yaml"
    config_file.parent.mkdir()
    data = yaml.safe_load(TINY.read_text())
    data["data"]["domain"]["documents"] = [str((TINY.parent / data["data"]["domain"]["documents"][0]).resolve())]
    data["data"]["counseling"]["path"] = str((TINY.parent / data["data"]["counseling"]["path"]).resolve())
    data["data"]["safety"]["sources"][0]["path"] = str((TINY.parent / data["data"]["safety"]["sources"][0]["path"]).resolve())
    data["arms"] = [{"name": "other", "stage": "domain", "overrides": {"data.domain.pdf": "other.pdf"}}]
    data["comparisons"] = []
    config_file.write_text(yaml.safe_dump(data))
    config = load_config(config_file, ["seed=1"])
    assert config.arm_config("other").data.domain.documents == [(config_file.parent / "other.pdf").resolve()]
    assert config.lineage.arm("other").overrides == {"data.domain.documents": [str((config_file.parent / "other.pdf").resolve())]}
    assert config.arm_config("other").seed == 1


def test_no_module_outside_the_table_names_an_arm():
    """Arm names live in the config schema's table (harness/run/lineage.py) and the config files only."""
    arm_names = {arm.name for arm in Lineage().arms}
    pattern = re.compile(
        r"[\"'](" + "|".join(re.escape(n) for n in arm_names if "-" in n) + r")[\"']"
        r"|(?:name|arm|checkpoint|parent|reference)\s*(?:==|!=|in)\s*\(?[\"'](" + "|".join(map(re.escape, arm_names)) + r")[\"']"
    )
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in PACKAGE_FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != TABLE_MODULE
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


OTHER_PDF_PAGES = [
    "# Peer support groups\nPeer support groups bring together people who share an experience of illness. Members "
    "trade practical advice about appointments, medication routines and returning to work, and many say that being "
    "understood without explanation is the main benefit. Groups meet weekly in libraries, clinics or online.",
    "# Keeping a mood diary\nA mood diary records sleep, activity, energy and mood once a day on a simple scale. "
    "Over several weeks the entries show patterns that are hard to notice from memory, such as low mood after short "
    "nights. Bringing the diary to appointments helps a clinician adjust a care plan with real observations.",
    "# Planning for difficult days\nA written plan for difficult days lists early warning signs, steps that helped "
    "before, people to call and how to reach urgent care. Writing it during a calm week means it is ready when "
    "thinking is harder. Sharing a copy with a trusted person lets them help follow it.",
]
ARMS = [
    {"name": "domain", "stage": "domain", "label": "Domain adaptation"},
    {"name": "domain-other", "stage": "domain", "overrides": {"data.domain.pdf": "OTHER_PDF"}},
    {"name": "instruct-other", "stage": "instruct", "parent": "domain-other"},
    {"name": "instruct-r16", "stage": "instruct", "overrides": {"lora.r": 16, "lora.alpha": 32}},
    {"name": "domain2", "stage": "domain", "parent": "domain", "overrides": {"training.domain.learning_rate": 0.0005}},
    {"name": "instruct-chain", "stage": "instruct", "parent": "domain2"},
]
COMPARISONS = [{"arm": "instruct-chain", "reference": "instruct-r16", "label": "Two domain stages before SFT"}]


def _run_all(config_file: Path, run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "run-all", "--config", str(config_file), "--output", str(run_dir),
         "--set", "eval.suite=[perplexity]"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )


@pytest.fixture(scope="module")
def lineage_run(tmp_path_factory, make_pdf, embedded_model_dir):
    root = tmp_path_factory.mktemp("lineage")
    other_pdf = make_pdf(root, OTHER_PDF_PAGES, name="other.pdf")
    data = yaml.safe_load(TINY.read_text())
    data["data"]["domain"]["documents"] = [str((TINY.parent / data["data"]["domain"]["documents"][0]).resolve())]
    data["data"]["counseling"]["path"] = str((TINY.parent / data["data"]["counseling"]["path"]).resolve())
    data["data"]["safety"]["sources"][0]["path"] = str((TINY.parent / data["data"]["safety"]["sources"][0]["path"]).resolve())
    data["arms"] = json.loads(json.dumps(ARMS).replace("OTHER_PDF", str(other_pdf)))
    data["comparisons"] = COMPARISONS
    config_file = root / "lineage.yaml"
    config_file.write_text(yaml.safe_dump(data, sort_keys=False))
    run_dir = root / "run"
    first = _run_all(config_file, run_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return run_dir, config_file, other_pdf, first.stdout


def test_every_arm_trains_from_its_parent_with_its_own_settings(lineage_run):
    run_dir, _, other_pdf, _ = lineage_run
    manifests = {arm["name"]: Manifest.load(run_dir / "checkpoints" / arm["name"]) for arm in ARMS}
    assert {name: (m.stage, m.parent) for name, m in manifests.items()} == {
        arm["name"]: (arm["stage"], arm.get("parent")) for arm in ARMS
    }
    assert manifests["instruct-r16"].lora["r"] == 16 and manifests["instruct-other"].lora["r"] == 4
    assert manifests["domain-other"].data_fingerprints["domain_pdf"] == sha256_file(other_pdf)
    run_split = manifests["domain"].data_fingerprints["domain_split"]
    assert manifests["domain-other"].data_fingerprints["heldout_split"] == run_split
    assert manifests["domain2"].start_fingerprint != manifests["domain"].start_fingerprint == manifests["domain"].base_fingerprint
    merged = sorted(p.name.rsplit("-", 1)[0] for p in (run_dir / "merged").iterdir())
    assert merged == ["domain", "domain-other", "domain2"]


def test_every_arm_is_scored_on_the_same_heldout_items_with_its_contrasts(lineage_run):
    run_dir, *_ = lineage_run
    results = {p.stem: json.loads(p.read_text()) for p in (run_dir / "results").glob("*.json")}
    assert set(results) == {"base", *(arm["name"] for arm in ARMS)}
    assert len({r["evals"]["perplexity"]["n_items"] for r in results.values()}) == 1
    fingerprints = {r["checkpoint"]["fingerprint"] for r in results.values()}
    assert len(fingerprints) == len(results), "each lineage (base + chain of adapters) has its own weights"
    references = {name: set(r["deltas"].get("heldout_perplexity", {})) for name, r in results.items()}
    assert references["instruct-chain"] == {"base", "domain2", "instruct-r16"}
    assert references["domain2"] == {"base", "domain"}
    assert references["instruct-r16"] == {"base"}
    inspection = json.loads((run_dir / "run.json").read_text())["data_inspect"]
    assert set(inspection["arms"]) == {"domain-other"}
    assert inspection["arms"]["domain-other"]["heldout_ngram_overlap"] < 0.05


def test_the_report_names_every_arm_and_contrast_and_a_second_run_skips_everything(lineage_run):
    run_dir, config_file, _, _ = lineage_run
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    for arm in ARMS:
        assert arm["name"] in report
    assert "Two domain stages before SFT (instruct-chain vs instruct-r16)" in report
    assert "The domain stage on top of domain (domain2 vs domain)" in report
    second = _run_all(config_file, run_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    for arm in ARMS:
        assert f"{arm['name']}: checkpoint is up to date, skipping" in second.stdout + second.stderr
    assert (second.stdout + second.stderr).count("results are up to date, skipping") == len(ARMS) + 1
