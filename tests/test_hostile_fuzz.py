"""A bounded hostile pass (`-m slow`): odd `--set` values on every config key, and randomly damaged PDF bytes.

Every input either works or fails as one `HarnessError` line; anything else (a traceback-worthy
exception, a hang) is a finding. Cases are seeded, so a failure names the case that reproduces it.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel

from harness.run.config import DomainDataConfig, HarnessConfig, load_config
from harness.data.corpus import load_domain_corpus
from harness.core.errors import HarnessError

pytestmark = pytest.mark.slow

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
ODD_VALUES = [
    "", "~", "null", "-1", "0", "1e309", "99999999999999999999999", ".nan", "-.inf", "true", "[]", "{}", "[[]]",
    "[unclosed", "{a: 1, a: 2}", "'../../etc'", "/", "\x00", "ünïcödé", "x" * 5000, "!!python/object/apply:os.system [echo]",
    "&anchor [*anchor]", "*undefined_alias", "- a\n- b", "[{path: missing.jsonl}]", "[{}]", "{path: 1}", "0x10", "1_000",
]
CASE_SECONDS = 20
"""A case that takes longer is a hang: the slowest accepted case measured here took under 2 s."""


def config_keys(model: type[BaseModel] = HarnessConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, sections included."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys.extend(config_keys(field.annotation, f"{prefix}{name}."))
    return keys


@contextmanager
def time_limit(seconds: int, case: str) -> Iterator[None]:
    def hang(*_):
        raise TimeoutError(f"{case} ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(case: str, action) -> str:
    """`ok` or `user error`; anything else fails the test, naming the case."""
    with time_limit(CASE_SECONDS, case):
        try:
            action()
        except HarnessError as exc:
            assert "\n" not in str(exc), f"{case}: multi-line error {exc!r}"
            return "user error"
    return "ok"


def test_odd_values_on_every_config_key_load_or_fail_as_one_line():
    from harness.evals.runner import check_eval_settings
    from harness.data.run_data import load_run_data

    seen = {"ok": 0, "user error": 0}
    data_budget = time.monotonic() + 120
    for key in config_keys():
        for value in ODD_VALUES:
            case = f"--set {key}={value[:40]!r}"
            try:
                config = load_config(TINY, [f"{key}={value}"])
            except HarnessError as exc:
                assert "\n" not in str(exc), f"{case}: multi-line error {exc!r}"
                seen["user error"] += 1
                continue
            seen[outcome(case, lambda: check_eval_settings(config))] += 1
            if (key.startswith("data.") or key == "seed") and time.monotonic() < data_budget:
                seen[outcome(case, lambda: load_run_data(config))] += 1
    assert seen["ok"] and seen["user error"], seen


def _small_pdf(make_pdf, directory: Path) -> bytes:
    pages = [f"# Section {n}\n\n" + "Sleep routines help rest and mood. " * 30 for n in range(3)]
    return make_pdf(directory, pages).read_bytes()


PDF_TOKENS = [b"/FlateDecode", b"/Length", b"/Kids", b"/Count", b"/Type", b"/Pages", b"/Font", b"obj", b"endobj",
              b"stream", b"xref", b"/Root", b"/Parent", b"R"]


def damaged(good: bytes, seed: int) -> bytes:
    """One of four kinds of damage, chosen by the seed: flipped bytes, a cut, a swapped token, a repeated chunk."""
    rng, data = random.Random(seed), bytearray(good)
    kind = seed % 4
    if kind == 0:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, 200)]
        data += b"\n%%EOF\n"
    elif kind == 2:
        token = rng.choice(PDF_TOKENS)
        replacement = rng.choice([*PDF_TOKENS, b"/X", b"-1", b"99999999999", b"0", b"(", b"<<", b"[", b"/FlateDecodX"])
        data = bytearray(bytes(data).replace(token, replacement, rng.randint(1, 3)))
    else:
        start, source = rng.randrange(len(data)), rng.randrange(len(data))
        data[start:start] = data[source : source + rng.randint(1, 500)]
    return bytes(data)


def test_randomly_damaged_pdfs_extract_or_fail_as_one_line(tmp_path, make_pdf):
    good = _small_pdf(make_pdf, tmp_path)
    path = tmp_path / "damaged.pdf"
    seen = {"ok": 0, "user error": 0}
    deadline = time.monotonic() + 120
    for seed in range(3000):
        if time.monotonic() > deadline:
            break
        path.write_bytes(damaged(good, seed))
        seen[outcome(f"PDF damage seed {seed}", lambda: load_domain_corpus(DomainDataConfig(pdf=path)))] += 1
    assert seen["ok"] and seen["user error"], seen
