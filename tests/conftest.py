"""Shared fixtures: the third-party data folder, PDFs built on the fly, a tiny offline tokenizer, configs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One BLAS/OpenMP thread per process, set before torch is imported: on a 2-core machine, threads
# spinning against any other load slow model tests by 10x or more. Every way of running pytest
# (`make test`, CI, a bare `pytest`) gets the same suite; export OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO_ROOT / "harness" / "sample_data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """/work/shared/data (the folder next to the repository); tests using it skip where it is absent."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"third-party data folder {path} is absent (it lives next to the repository checkout)")
    return path


@pytest.fixture(scope="session")
def cpu_kernels() -> Any:
    """The decoder's compiled CPU kernels, built here as on a user's machine (a C++ compiler and ninja); tests using
    them skip where no C++ compiler is on the PATH."""
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler on the PATH to build the CPU kernels")
    from harness.models.cpu_kernels import compiled_kernels

    kernels = compiled_kernels()
    assert kernels is not None, "the kernels must build where a compiler is present"
    return kernels


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the saved report fixture run (tests/fixtures/run_fixture) that a test may change."""
    target = tmp_path / "run"
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "run_fixture", target)
    return target


MakePdf = Callable[..., Path]


@pytest.fixture(scope="session")
def make_pdf() -> MakePdf:
    """make_pdf(directory, pages, *, header=None, page_numbers=False, user_password=None, name="doc.pdf") -> Path.

    `pages` is one string per page; lines starting with "# " become bold headings. `header` is printed
    at the top of every page and `page_numbers` adds "Page N" at the foot, as real documents do.
    """
    from fpdf import FPDF

    def build(
        directory: Path,
        pages: list[str],
        *,
        header: str | None = None,
        page_numbers: bool = False,
        user_password: str | None = None,
        name: str = "doc.pdf",
    ) -> Path:
        class Document(FPDF):
            def header(self) -> None:
                if header:
                    self.set_font("Helvetica", "I", 9)
                    self.cell(0, 8, header, align="C")
                    self.ln(10)

            def footer(self) -> None:
                if page_numbers:
                    self.set_y(-15)
                    self.set_font("Helvetica", size=9)
                    self.cell(0, 10, f"Page {self.page_no()}", align="C")

        pdf = Document()
        for text in pages:
            pdf.add_page()
            for block in text.split("\n\n") if text else []:
                heading = block.startswith("# ")
                pdf.set_font("Helvetica", "B" if heading else "", 14 if heading else 11)
                pdf.multi_cell(0, 6, block.removeprefix("# "), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
        if user_password is not None:
            pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
        path = Path(directory) / name
        path.write_bytes(bytes(pdf.output()))
        return path

    return build


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """A word-level tokenizer trained offline on the shipped sample texts (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [
        (SAMPLE_DATA / "counseling_conversations.jsonl").read_text(encoding="utf-8"),
        (SAMPLE_DATA / "safety_prompts.jsonl").read_text(encoding="utf-8"),
        (REPO_ROOT / "scripts" / "build_sample_pdf.py").read_text(encoding="utf-8"),
    ]
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """write_config(domain=..., counseling=..., safety=..., **top_level) -> YAML path in tmp_path.

    Defaults point at the shipped sample data; each keyword replaces or extends that part of `data`.
    """

    def write(
        domain: dict[str, Any] | None = None,
        counseling: dict[str, Any] | None = None,
        safety: dict[str, Any] | None = None,
        **top_level: Any,
    ) -> Path:
        data = {
            "domain": {"documents": [str(SAMPLE_DATA / "mental_health_basics.pdf")], **(domain or {})},
            "counseling": {"path": str(SAMPLE_DATA / "counseling_conversations.jsonl"), "preset": "amod", **(counseling or {})},
            "safety": safety or {"sources": [{"path": str(SAMPLE_DATA / "safety_prompts.jsonl"), "format": "harness"}]},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"name": "test", "output_dir": str(tmp_path / "runs"), "data": data, **top_level}))
        return path

    return write
