"""Reliability and security without a model: atomic writes on a full disk, the run lock across processes,
hostile terminal text, awkward input files, pickle and remote-code refusal, leftovers of killed writers,
and the determinism record. (SIGKILL of a whole `run-all` is in test_fault_injection.py, `-m slow`.)"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from harness.core.atomic import atomic_directory, atomic_write_text, remove_leftovers_in, remove_stale_temporaries
from harness.models.checkpoints import load_complete_manifest, resolve_checkpoint
from harness.run.config import CounselingDataConfig, DomainDataConfig, ModelConfig, load_config
from harness.core.console import safe_text
from harness.data.conversations import MAX_FIELD_CHARS, load_counseling
from harness.data.corpus import load_domain_corpus
from harness.core.errors import HarnessError
from harness.run.layout import MANIFEST_FILE
from harness.run.manifest import TRAINING_RTOL, Determinism, Manifest
from harness.models.loading import check_weight_files, load_causal_lm, load_tokenizer, resolve_model
from harness.pipeline import run_lock

REPO = Path(__file__).resolve().parents[1]


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class _FullDiskFile:
    """A real file handle whose writes fail as on a full disk."""

    def __init__(self, handle):
        self._handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def write(self, data):
        _disk_full()


def _siblings(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---- 1. atomic writes ----


@pytest.mark.parametrize("failing_step", ["write", "fsync"])
def test_full_disk_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, failing_step):
    target = tmp_path / "results.json"
    atomic_write_text(target, "previous complete content")
    if failing_step == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FullDiskFile(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(HarnessError, match="results.json: disk full while writing") as raised:
        atomic_write_text(target, "new content " * 1000)
    assert "\n" not in str(raised.value) and "previous version is kept" in str(raised.value)
    assert raised.value.__cause__.errno == errno.ENOSPC
    assert target.read_text() == "previous complete content"
    assert _siblings(tmp_path) == ["results.json"]


def test_a_checkpoint_is_flushed_file_by_file_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with atomic_directory(tmp_path / "domain") as tmp:
        (tmp / "adapter.safetensors").write_text("weights")
        (tmp / "tokenizer.json").write_text("{}")
        partial = str(tmp)
    assert {f"{partial}/adapter.safetensors", f"{partial}/tokenizer.json", partial} <= set(synced)


def _complete_dir(path: Path, marker: str) -> None:
    with atomic_directory(path) as tmp:
        (tmp / "adapter.safetensors").write_text(marker)
        (tmp / MANIFEST_FILE).write_text(json.dumps({"marker": marker}))


def test_error_inside_atomic_directory_keeps_the_old_directory(tmp_path):
    final = tmp_path / "checkpoints" / "domain"
    _complete_dir(final, "old")
    with pytest.raises(HarnessError, match="domain: disk full while writing") as raised, atomic_directory(final) as tmp:
        (tmp / "adapter.safetensors").write_text("half of the new weights")
        _disk_full()
    assert raised.value.__cause__.errno == errno.ENOSPC
    assert (final / "adapter.safetensors").read_text() == "old"
    assert json.loads((final / MANIFEST_FILE).read_text()) == {"marker": "old"}
    assert _siblings(final.parent) == ["domain"]


def test_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    final = tmp_path / "domain"
    _complete_dir(final, "old")
    real_replace = os.replace

    def replace(src, dst):
        if str(src).endswith(".partial"):
            _disk_full()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(HarnessError, match="disk full"):
        _complete_dir(final, "new")
    assert (final / "adapter.safetensors").read_text() == "old"
    assert _siblings(tmp_path) == ["domain"]


def test_atomic_directory_replaces_a_complete_directory_whole(tmp_path):
    final = tmp_path / "domain"
    _complete_dir(final, "old")
    (final / "stale_extra_file").write_text("from the old version")
    _complete_dir(final, "new")
    assert _siblings(final) == sorted(["adapter.safetensors", MANIFEST_FILE])
    assert (final / "adapter.safetensors").read_text() == "new"
    assert _siblings(tmp_path) == ["domain"]


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_atomic_writes_get_the_permissions_of_plain_writes(tmp_path, umask, file_mode, dir_mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "report.html", "<html></html>")
        _complete_dir(tmp_path / "domain", "new")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "domain").stat().st_mode) == dir_mode


# ---- 2. one process per run directory ----

_HOLD_LOCK = """
import sys
from pathlib import Path
from harness.pipeline import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_run_lock_refuses_a_second_process_until_released(tmp_path):
    run_dir = tmp_path / "runs" / "demo"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run_dir)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(HarnessError, match="another harness command") as refused:
            with run_lock(run_dir):
                pass
        assert str(run_dir) in str(refused.value)
        report = subprocess.run(
            [sys.executable, "-m", "harness", "report", str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert report.returncode == 1 and "another harness command" in report.stdout + report.stderr
        assert not (run_dir / "report.html").exists()
    finally:
        holder.communicate(input="", timeout=30)
    assert holder.returncode == 0
    with run_lock(run_dir):
        assert (run_dir / ".lock").is_file()


@pytest.mark.parametrize("command", [["report"], ["run-all", "--config", "configs/tiny.yaml", "--output"]])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, command):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run_dir = tmp_path / "run"
    shutil.copytree(REPO / "tests" / "fixtures" / "run_fixture", run_dir)
    (run_dir / ".lock").symlink_to(victim)
    result = subprocess.run(
        [sys.executable, "-m", "harness", *command, str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{run_dir / '.lock'}: is a symbolic link" in result.stderr
    assert victim.read_text() == "precious"


def test_the_lock_never_truncates_an_existing_lock_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("written by someone else")
    with run_lock(run_dir):
        pass
    assert (run_dir / ".lock").read_text() == "written by someone else"


def test_run_lock_of_a_killed_process_is_not_stale(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.communicate(timeout=30)
    with run_lock(run_dir):
        assert (run_dir / ".lock").is_file()


# ---- 3. hostile content ----


@pytest.mark.parametrize(
    "hostile, shown",
    [
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("\x1b[38;2;255;0;0mtrue colour\x1b[m", "true colour"),
        ("\x1b[38:5:196mcolon form\x1b[>4;1m", "colon form"),
        ("\x1b]0;pwned title\x07after", "after"),
        ("\x1b]0;pwned title\x1b\\after", "after"),
        ("\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x1bP+q544e\x1b\\device query", "device query"),
        ("up\x1b[2A\x1b[10Dover\x1b[2J\x1b[Hwrite", "upoverwrite"),
        ("save\x1b7 restore\x1b8 reset\x1bc bare\x1b", "save restore reset bare"),
        ("bell\x07 back\x08space\rreturn\x00nul\x7fdel", "bell backspacereturnnuldel"),
        ("8-bit \x9b31mcsi\x9b0m and \x9d0;t\x9c", "8-bit 31mcsi0m and 0;t"),
        ("keeps\ttabs\nand newlines and ünïcödé — “quotes”", "keeps\ttabs\nand newlines and ünïcödé — “quotes”"),
    ],
)
def test_safe_text_strips_terminal_control(hostile, shown):
    cleaned = safe_text(hostile)
    assert cleaned == shown
    assert not any(ord(c) < 32 and c not in "\t\n" or 0x7F <= ord(c) <= 0x9F for c in cleaned)


def test_cli_error_line_carries_no_escape_sequences(tmp_path):
    evil = tmp_path / "cfg\x1b]0;pwned\x07\x1b[2J\x1b[31mred.yaml"
    result = subprocess.run(
        [sys.executable, "-c", "from harness.cli import app; app()", "data", "inspect", "--config", str(evil)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "cfgred.yaml: config file not found" in result.stderr


def test_paths_names_and_pdf_titles_print_as_plain_text():
    from harness.cli import _inspect_tables, _print_paths
    from harness.core.console import console

    hostile = "e\x1b]0;pwned\x07\x1b[2J[red]x[/red]"
    report = {"domain": {"pdf": hostile, "section_list": [{"index": 0, "title": hostile, "first_page": 1, "chars": 9, "split": "train"}]}}
    with console.capture() as captured:
        _print_paths("Wrote", [hostile])
        _inspect_tables(report)
    printed = captured.get()
    assert "\x1b" not in printed and "\x07" not in printed
    assert printed.count("e[red]x[/red]") == 3, "markup in a name must print as text"


@pytest.mark.parametrize("arms", [["../x"], ["domain/../../etc"], ["base"], ["Domain"]])
def test_arms_accept_only_the_three_arm_names(write_config, arms):
    with pytest.raises(HarnessError, match="arms"):
        load_config(write_config(arms=arms))


# ---- 4. awkward input files ----


def _counseling_csv(rows: list[tuple[str, str]]) -> str:
    quoted = ['"{}","{}"'.format(p.replace('"', '""'), r.replace('"', '""')) for p, r in rows]
    return "Context,Response\n" + "\n".join(quoted) + "\n"


QA = [(f"Question {i}: why do I wake at night, \"again\"?", f"Answer {i}, part one.\nPart two, after a line break.") for i in range(8)]


def test_csv_with_bom_and_newlines_inside_quoted_fields(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _counseling_csv(QA).encode("utf-8"))
    data = load_counseling(CounselingDataConfig(path=str(path), preset="amod"), seed=0)
    loaded = {(c.prompt, c.response) for c in data.train + data.test}
    assert data.rows_raw == len(QA)
    assert loaded == set(QA)
    assert data.rows_capped == 0


@pytest.mark.parametrize("suffix, bad_line", [(".csv", 8), (".jsonl", 4), (".json", 5)])
def test_latin1_byte_in_a_utf8_file_is_a_one_line_error_naming_the_line(tmp_path, suffix, bad_line):
    records = [json.dumps({"Context": p, "Response": r}) for p, r in QA]
    text = {
        ".csv": _counseling_csv(QA),
        ".jsonl": "\n".join(records),
        ".json": "[\n" + ",\n".join(records) + "\n]",
    }[suffix]
    target = b"Question 3: why do I wake at night"
    raw = text.encode("utf-8").replace(target, target.replace(b"night", "nuit d'\xe9t\xe9".encode("latin-1")))
    path = tmp_path / f"mixed{suffix}"
    path.write_bytes(raw)
    with pytest.raises(HarnessError) as raised:
        load_counseling(CounselingDataConfig(path=str(path), preset="amod"), seed=0)
    message = str(raised.value)
    assert f"{path}:{bad_line}:" in message and "0xe9" in message and "UTF-8" in message
    assert "\n" not in message


@pytest.mark.parametrize("fmt", ["harness", "xstest"])
def test_latin1_byte_in_a_safety_file_is_a_one_line_error(tmp_path, fmt):
    from harness.run.config import SafetyDataConfig
    from harness.data.safety_prompts import load_safety_prompts

    if fmt == "harness":
        lines = [json.dumps({"id": f"p{i}", "category": "benign", "prompt": f"How do I sleep better, part {i}?"}) for i in range(3)]
        path = tmp_path / "prompts.jsonl"
    else:
        lines = ["id,prompt,type,label", *[f"{i},How do I sleep better part {i}?,safe_contexts,safe" for i in range(3)]]
        path = tmp_path / "xstest.csv"
    raw = "\n".join(lines).encode("utf-8").replace(b"part 1", "partie d'\xe9t\xe9".encode("latin-1"))
    path.write_bytes(raw)
    with pytest.raises(HarnessError) as raised:
        load_safety_prompts(SafetyDataConfig(sources=[{"path": path, "format": fmt}]))
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    assert ("UTF-8" in message) if fmt == "harness" else ("cannot be read" in message)


def test_an_overlong_field_is_capped_and_counted(tmp_path):
    rows = [*QA, ("Why can I not stop writing?", "word " * 40_000)]
    path = tmp_path / "long.csv"
    path.write_text(_counseling_csv(rows), encoding="utf-8")
    data = load_counseling(CounselingDataConfig(path=str(path), preset="amod"), seed=0)
    conversations = data.train + data.test
    assert data.rows_raw == len(rows)
    assert data.rows_capped == 1
    assert max(len(c.response) for c in conversations) == MAX_FIELD_CHARS
    assert {c.response for c in conversations} >= {r for _, r in QA}

    from harness.data.inspection import Leakage, _counseling_facts

    facts = _counseling_facts(data, load_config(REPO / "configs" / "tiny.yaml"), Leakage(0.0, 13, 0.0))
    assert facts.rows_capped == 1, "data inspect (and the report's data section) must report the cap"


def _page_word(number: int) -> str:
    return "".join(chr(ord("a") + int(d)) for d in f"{number:03d}")


def _sleep_notes_pdf(path: Path, pages: int) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in range(1, pages + 1):
        pdf.add_page()
        word = _page_word(page)
        for line in range(12):
            pdf.cell(0, 6, f"Sleep note {word} {line}: a steady routine and a dark {word} room help rest.", new_x="LMARGIN", new_y="NEXT")
    path.write_bytes(bytes(pdf.output()))
    return path


def _extraction_peak(path: Path):
    tracemalloc.start()
    try:
        corpus = load_domain_corpus(DomainDataConfig(pdf=str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return corpus, peak


def test_a_200_page_pdf_is_extracted_with_bounded_memory(tmp_path):
    corpus, peak = _extraction_peak(_sleep_notes_pdf(tmp_path / "long.pdf", 200))
    _, peak_of_20 = _extraction_peak(_sleep_notes_pdf(tmp_path / "short.pdf", 20))

    assert corpus.pages == 200
    text = corpus.train_text + corpus.heldout_text
    assert f"Sleep note {_page_word(1)} 0" in text and f"Sleep note {_page_word(200)} 11" in text
    # measured: 1.7 MB for 20 pages, 3.4 MB for 200; memory that grew with the whole document would be ~10x
    assert peak < 4 * peak_of_20, f"peak traced memory {peak / 1e6:.1f} MB for 200 pages vs {peak_of_20 / 1e6:.1f} MB for 20"


def test_checkpoint_without_tokenizer_files_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(HarnessError, match="tokenizer") as raised:
        load_tokenizer(str(tmp_path), ModelConfig(name=str(tmp_path)))
    assert str(tmp_path) in str(raised.value) and "\n" not in str(raised.value)


def test_corrupt_checkpoint_manifest_is_a_one_line_error(tmp_path):
    (tmp_path / MANIFEST_FILE).write_text('{"arm": "domain", "truncated')
    with pytest.raises(HarnessError, match="not a valid manifest.*`harness run-all` retrains domain") as raised:
        load_complete_manifest(tmp_path, "domain")
    assert "\n" not in str(raised.value)


# ---- 5. supply chain: pickled adapters ----


def _adapter(tmp_path: Path, weights_name: str, adapter_config: str | None = None) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (base / "model.safetensors").write_bytes(b"\x00" * 16)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    config = adapter_config if adapter_config is not None else json.dumps({"base_model_name_or_path": str(base), "peft_type": "LORA"})
    (adapter / "adapter_config.json").write_text(config)
    (adapter / weights_name).write_bytes(b"\x80\x02pickled adapter")
    return adapter


def test_pickled_peft_adapter_is_refused_unless_allowed(tmp_path, write_config):
    adapter = _adapter(tmp_path, "adapter_model.bin")
    refusing = load_config(write_config())
    with pytest.raises(HarnessError, match="adapter_model.bin.*allow_pickle"):
        resolve_checkpoint(str(adapter), refusing, tmp_path / "runs")
    allowing = load_config(write_config(model={"allow_pickle": True}))
    resolved = resolve_checkpoint(str(adapter), allowing, tmp_path / "runs")
    assert resolved.adapter_dir == adapter and resolved.start_ref == str(tmp_path / "base")


@pytest.mark.parametrize("decoy", ["decoy.safetensors", "model.safetensors", "adapter_model.safetensors.bak"])
def test_a_safetensors_decoy_beside_a_pickled_adapter_is_refused(tmp_path, write_config, decoy):
    adapter = _adapter(tmp_path, "adapter_model.bin")
    (adapter / decoy).write_bytes(b"")
    with pytest.raises(HarnessError, match="adapter_model.bin.*allow_pickle"):
        resolve_checkpoint(str(adapter), load_config(write_config()), tmp_path / "runs")
    with pytest.raises(HarnessError, match="adapter_model.bin.*allow_pickle"):
        check_weight_files(adapter, allow_pickle=False, adapter=True)


def test_a_safetensors_decoy_beside_pickled_model_weights_is_refused(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x02pickled model")
    (model / "decoy.safetensors").write_bytes(b"")
    with pytest.raises(HarnessError, match="pytorch_model.bin.*allow_pickle"):
        check_weight_files(model, allow_pickle=False)


def test_a_checkpoint_path_through_dot_dot_is_named_after_the_folder_it_reaches(tmp_path, write_config):
    adapter = _adapter(tmp_path, "adapter_model.safetensors")
    (adapter / "sub").mkdir()
    resolved = resolve_checkpoint(f"{adapter}/sub/..", load_config(write_config()), tmp_path / "runs")
    assert resolved.name == "adapter"


def test_safetensors_peft_adapter_is_accepted(tmp_path, write_config):
    adapter = _adapter(tmp_path, "adapter_model.safetensors")
    resolved = resolve_checkpoint(str(adapter), load_config(write_config()), tmp_path / "runs")
    assert resolved.adapter_dir == adapter and resolved.arm == "external"


@pytest.mark.parametrize("adapter_config", ['{"base_model_name_or_path": ', '["not", "an", "object"]'])
def test_broken_adapter_config_is_a_one_line_error(tmp_path, write_config, adapter_config):
    adapter = _adapter(tmp_path, "adapter_model.safetensors", adapter_config)
    with pytest.raises(HarnessError, match="adapter_config.json") as raised:
        resolve_checkpoint(str(adapter), load_config(write_config()), tmp_path / "runs")
    assert "\n" not in str(raised.value)


def test_adapter_whose_base_is_not_available_offline_names_the_base(tmp_path, write_config):
    adapter = _adapter(tmp_path, "adapter_model.safetensors", json.dumps({"base_model_name_or_path": "org/absent-base"}))
    with pytest.raises(HarnessError, match="base model 'org/absent-base' is not available offline") as raised:
        resolve_checkpoint(str(adapter), load_config(write_config()), tmp_path / "runs")
    assert "\n" not in str(raised.value)


def test_a_mistyped_path_under_a_local_folder_is_not_taken_for_a_hub_id(tmp_path, write_config, monkeypatch):
    config = load_config(write_config())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(HarnessError, match="checkpoint 'runs/typo' not found: looked for"):
        resolve_checkpoint("runs/typo", config, tmp_path / "runs")
    assert resolve_checkpoint("org/model", config, tmp_path / "runs").start_ref == "org/model"


def _remote_code_model(tmp_path: Path) -> Path:
    """A model directory whose config points at custom code that raises as soon as it is imported."""
    directory = tmp_path / "custom"
    directory.mkdir()
    auto_map = {"AutoConfig": "configuration_probe.ProbeConfig", "AutoModelForCausalLM": "modeling_probe.ProbeForCausalLM"}
    (directory / "config.json").write_text(json.dumps({"model_type": "harness_probe", "auto_map": auto_map}))
    for module in ("configuration_probe.py", "modeling_probe.py"):
        (directory / module).write_text('raise RuntimeError("remote code executed")\n')
    (directory / "model.safetensors").write_bytes(b"\x00" * 16)
    return directory


def test_remote_code_is_refused_without_running_it(tmp_path):
    directory = _remote_code_model(tmp_path)
    config = ModelConfig(name=str(directory))
    with pytest.raises(HarnessError, match="set model.trust_remote_code: true only if you trust") as raised:
        load_causal_lm(resolve_model(config), config, quantization="none")
    assert "\n" not in str(raised.value)


def test_remote_code_opt_in_reaches_the_loader(monkeypatch):
    seen = {}

    def fake_from_pretrained(ref, **kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    with pytest.raises(HarnessError):
        load_causal_lm("org/model", ModelConfig(name="org/model", trust_remote_code=True), quantization="none")
    assert seen["trust_remote_code"] is True


# ---- 6. leftovers of a killed writer ----

_KILLED_WRITER = """
import os, shutil, signal, sys
from pathlib import Path
from harness.core import atomic

target, kind, fatal_call, fatal_number = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = {"replace": 0, "rmtree": 0}

def dying(name, real):
    def call(*args, **kwargs):
        calls[name] += 1
        if name == fatal_call and calls[name] == fatal_number:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

os.replace = dying("replace", os.replace)
shutil.rmtree = dying("rmtree", shutil.rmtree)
if kind == "file":
    atomic.atomic_write_text(target, "new")
else:
    with atomic.atomic_directory(target) as tmp:
        (tmp / "manifest.json").write_text("new")
"""


def _kill_a_writer(target: Path, kind: str, fatal_call: str, fatal_number: int) -> None:
    """Run a real atomic write in a child process that SIGKILLs itself at the given rename or delete."""
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(target), kind, fatal_call, str(fatal_number)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr


def _content(path: Path) -> str | None:
    if path.is_dir():
        return (path / "manifest.json").read_text()
    return path.read_text() if path.exists() else None


@pytest.mark.parametrize(
    "kind, had_previous, fatal_call, fatal_number, expected",
    [
        ("file", True, "replace", 1, "old"),  # killed before the temp file was renamed over the old one
        ("dir", False, "replace", 1, None),  # killed before a first version was renamed into place
        ("dir", True, "replace", 2, "old"),  # killed between moving the old version aside and renaming the new one in
        ("dir", True, "rmtree", 1, "new"),  # killed while deleting the moved-aside old version
    ],
)
def test_the_next_run_clears_what_a_killed_writer_left(tmp_path, kind, had_previous, fatal_call, fatal_number, expected):
    run_dir = tmp_path / "run"
    target = run_dir / ("results" if kind == "file" else "checkpoints") / ("domain.json" if kind == "file" else "domain")
    kept = run_dir / "results" / "base.json"
    atomic_write_text(kept, "complete")
    if had_previous and kind == "file":
        atomic_write_text(target, "old")
    elif had_previous:
        with atomic_directory(target) as tmp:
            (tmp / "manifest.json").write_text("old")

    _kill_a_writer(target, kind, fatal_call, fatal_number)
    leftovers = [p for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers, "the killed writer left nothing behind, so this case tests nothing"

    with run_lock(run_dir):
        pass
    assert _content(target) == expected
    assert kept.read_text() == "complete"
    hidden = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".*"))
    assert hidden == [".lock"]


def test_a_node_clears_only_its_own_leftovers_beside_live_neighbours(tmp_path):
    import tempfile

    mine = [Path(tempfile.mkdtemp(prefix=".domain.", suffix=".partial", dir=tmp_path)),
            Path(tempfile.mkdtemp(prefix=".domain.", suffix=".partial", dir=tmp_path))]
    neighbours = [Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=tmp_path)) for name in ("domain.p0", "domain-x")]
    previous = Path(tempfile.mkdtemp(prefix=".domain.", suffix=".old", dir=tmp_path))
    (previous / "manifest.json").write_text("previous complete version")

    cleared = remove_leftovers_in(tmp_path, lambda final: final == "domain")

    assert sorted(cleared) == sorted([*mine, previous])
    assert not any(p.exists() for p in mine) and all(p.is_dir() for p in neighbours)
    assert (tmp_path / "domain" / "manifest.json").read_text() == "previous complete version", "an .old whose final is missing is put back"


def test_leftover_scan_keeps_lookalike_names(tmp_path):
    lookalikes = [".lock", "notes.tmp", ".domain.partial", ".domain.short.tmp", "domain.abcd1234.partial"]
    for name in lookalikes:
        (tmp_path / name).write_text("user file")
    assert remove_stale_temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(lookalikes)


# ---- 7. determinism record ----


@pytest.mark.parametrize("deterministic", [False, True])
def test_determinism_record_reads_the_live_torch_settings(deterministic, tmp_path):
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        record = Determinism.current(seed=7)
    finally:
        torch.use_deterministic_algorithms(before)
    assert record.seed == 7
    assert record.deterministic_algorithms is deterministic
    assert record.torch_threads == torch.get_num_threads()
    assert f"relative {TRAINING_RTOL:g}" in record.promise
    manifest = Manifest(arm="base", stage=None, parent=None, base_model="m", base_fingerprint="f", config_hash="c", seed=7, determinism=record)
    manifest.save(tmp_path)
    assert Manifest.load(tmp_path).determinism == record


# ---- 8. damaged run directories and quick looks ----

FIXTURE_RUN = REPO / "tests" / "fixtures" / "run_fixture"


@pytest.fixture
def fixture_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run_dir)
    return run_dir


@pytest.mark.parametrize("damaged", ["results/base.json", "samples/base/safety.jsonl"])
def test_damaged_saved_results_are_named_with_the_command_that_redoes_them(fixture_run, damaged):
    from harness.evals.runner import add_deltas, read_result

    path = fixture_run / damaged
    path.write_bytes(path.read_bytes()[:100])
    result, damage = read_result(fixture_run, "base")
    assert result is None and damage.startswith(f"{path}: damaged")
    with pytest.raises(HarnessError, match=r"damaged .*`harness eval --checkpoint base`") as raised:
        add_deltas(fixture_run, load_config(REPO / "configs" / "tiny.yaml"), ["base", "domain"])
    assert "\n" not in str(raised.value)


def test_a_per_sample_log_missing_records_is_damage(fixture_run):
    from harness.evals.runner import read_result

    log = fixture_run / "samples" / "domain" / "similarity.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
    assert read_result(fixture_run, "domain")[1].startswith(f"{log}: damaged (holds")


def test_adapter_weights_that_do_not_match_the_manifest_are_damage(tmp_path):
    from harness.models.checkpoints import adapter_fingerprint, read_checkpoint

    (tmp_path / "adapter_model.safetensors").write_bytes(b"trained weights")
    Manifest(arm="domain", stage="domain", parent=None, base_model="m", base_fingerprint="f", config_hash="c", seed=0,
             adapter_fingerprint=adapter_fingerprint(tmp_path)).save(tmp_path)
    assert read_checkpoint(tmp_path)[1] is None
    (tmp_path / "adapter_model.safetensors").write_bytes(b"trained")
    manifest, damage = read_checkpoint(tmp_path)
    assert manifest is None and "adapter files do not match" in damage
    with pytest.raises(HarnessError, match="adapter files do not match.*`harness run-all` retrains domain"):
        load_complete_manifest(tmp_path, "domain")


@pytest.mark.parametrize(
    "suite, limit, beside",
    [
        (["safety"], 20, "partial/safety-limit20"),
        (["safety", "perplexity"], None, "partial/perplexity+safety"),
        (["perplexity", "similarity", "safety"], 5, "partial/perplexity+safety+similarity-limit5"),
        (["perplexity", "similarity", "safety"], None, ""),
    ],
)
def test_an_eval_measuring_less_than_the_saved_one_goes_beside_it(fixture_run, suite, limit, beside):
    from harness.evals.runner import results_root

    assert results_root(fixture_run, "base", suite, limit) == fixture_run / beside
    assert results_root(fixture_run, "never-evaluated", suite, limit) == fixture_run
