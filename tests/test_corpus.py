"""Domain corpus: sectioning, the contiguous held-out split, windows and PDF errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from harness.run.config import DomainDataConfig, load_config
from harness.data.corpus import Section, load_domain_corpus, sections_from_pages, split_heldout, token_windows
from harness.data.documents import markdown_prose
from harness.core.errors import HarnessError
from harness.core.fingerprint import sha256_file

SAMPLE_PDF = Path(__file__).resolve().parents[1] / "harness" / "sample_data" / "mental_health_basics.pdf"

SENTENCES = [
    "Worry tends to grow when it is left alone in the dark, and naming it out loud often shrinks it.",
    "People who keep a short daily note of their worries usually find that most feared outcomes never arrive.",
    "That record becomes evidence the anxious mind can learn from over the following weeks.",
    "A walk in daylight, a regular bedtime and a kind word to yourself are small but steady helps.",
    "Friends can listen without fixing anything, and that alone can lighten a heavy day.",
    "Professional support is worth seeking when low mood lasts for more than two weeks.",
]
BODY = " ".join(SENTENCES) + " "


WORDS = "amber birch cedar dune ember fern grove harbor iris juniper kestrel lagoon meadow nettle orchard pebble quill".split()


def body(seed: int, sentences: int = 12) -> str:
    """Distinct prose per seed, wrapped like extracted PDF text, so no line repeats across pages."""
    parts = [
        f"{SENTENCES[(seed + i) % len(SENTENCES)][:-1]}, says {WORDS[(seed * 5 + i) % len(WORDS)]}."
        for i in range(sentences)
    ]
    return textwrap.fill(" ".join(parts), 90)


def _section(index: int, chars: int) -> Section:
    return Section(index, f"Part {index}", "x" * chars, index + 1)


# ---- sections ----


def test_sections_follow_headings_and_join_broken_lines():
    page1 = "Understanding Stress\n" + BODY.replace(". ", ".\n") + "\nAnxiety\n" + BODY
    page2 = "Sleep\n" + BODY * 2
    sections = sections_from_pages([page1, page2])
    assert [s.title for s in sections] == ["Understanding Stress", "Anxiety", "Sleep"]
    assert [s.first_page for s in sections] == [1, 1, 2]
    assert "dark, and naming it" in sections[0].text  # the broken lines were joined
    assert sections[2].text.startswith("Sleep\n\n")


def test_tiny_sections_merge_into_the_next():
    page = "Overview\nShort intro.\nDetails\n" + BODY * 2
    sections = sections_from_pages([page])
    assert len(sections) == 1
    assert sections[0].title == "Overview" and "Details" in sections[0].text


def test_without_headings_sections_are_page_groups():
    pages = [body(seed, 30) for seed in range(4)]
    sections = sections_from_pages(pages)
    assert len(sections) >= 2
    assert all(re.fullmatch(r"Pages? \d+(-\d+)?", s.title) for s in sections)
    assert sections[0].first_page == 1


def test_oversized_sections_are_cut_into_parts():
    sections = sections_from_pages(["Big Topic\n" + "\n\n".join([BODY * 4] * 12)])
    assert len(sections) >= 2
    assert sections[0].title == "Big Topic (part 1)"
    assert all(len(s.text) <= 8000 for s in sections)


def test_no_text_gives_no_sections():
    assert sections_from_pages(["", "  \n ", "3"]) == []


# ---- held-out split ----


def test_heldout_is_the_trailing_sections_closest_to_the_fraction():
    sections = [_section(i, 100) for i in range(10)]
    train, heldout = split_heldout(sections, 0.2)
    assert heldout == sections[-2:] and train == sections[:-2]


def test_heldout_never_takes_everything_and_never_nothing():
    sections = [_section(0, 10), _section(1, 1000)]
    train, heldout = split_heldout(sections, 0.1)
    assert train == sections[:1] and heldout == sections[1:]


def test_single_section_is_cut_at_a_paragraph_boundary():
    text = "\n\n".join(f"Paragraph {i}. " + " ".join(["word"] * 40) for i in range(10))
    train, heldout = split_heldout([Section(0, "Only", text, 1)], 0.2)
    assert len(train) == 1 and len(heldout) == 1
    assert heldout[0].text.startswith("Paragraph 8.")
    assert train[0].text + "\n\n" + heldout[0].text == text


def test_single_sentence_cannot_be_split():
    with pytest.raises(HarnessError, match="single sentence"):
        split_heldout([Section(0, "Only", "Just one sentence here", 1)], 0.2)


# ---- token windows ----


@pytest.mark.parametrize(
    ("n", "max_length", "stride", "expected_starts"),
    [(10, 4, 4, [0, 4, 8]), (8, 4, 4, [0, 4]), (10, 4, 2, [0, 2, 4, 6]), (3, 4, 4, [0]), (10, 4, 5, [0, 5, 6]), (10, 4, 9, [0, 9])],
)
def test_token_windows_start_every_stride_and_cover_the_tail(n, max_length, stride, expected_starts):
    ids = list(range(n))
    windows = token_windows(ids, max_length, stride)
    assert [w[0] for w in windows] == expected_starts
    assert all(1 <= len(w) <= max_length for w in windows)
    assert windows[-1][-1] == n - 1
    assert all(w == ids[w[0] : w[0] + len(w)] for w in windows)


def test_token_windows_of_nothing_and_bad_arguments():
    assert token_windows([], 4, 4) == []
    with pytest.raises(ValueError):
        token_windows([1, 2], 0, 1)


# ---- PDFs ----


def test_pdf_round_trip_removes_headers_and_page_numbers(tmp_path, make_pdf):
    pages = [f"# Topic {name}\n\n" + body(seed) for seed, name in enumerate(("One", "Two", "Three", "Four"))]
    pdf = make_pdf(tmp_path, pages, header="Calm Minds Newsletter", page_numbers=True)
    corpus = load_domain_corpus(DomainDataConfig(pdf=pdf, heldout_fraction=0.25))
    text = corpus.train_text + corpus.heldout_text
    assert corpus.pages == 4
    assert [s.title for s in corpus.sections] == ["Topic One", "Topic Two", "Topic Three", "Topic Four"]
    assert "Calm Minds Newsletter" not in text
    assert not re.search(r"Page \d", text)
    assert corpus.heldout_sections == corpus.sections[-1:]
    assert corpus.chars == sum(len(s.text) for s in corpus.sections)


def test_sample_pdf_dehyphenates_and_splits_contiguously(tiny_tokenizer):
    raw = "\n".join(page.extract_text() for page in PdfReader(SAMPLE_PDF).pages)
    broken = re.findall(r"(\w+)-\n(\w+)", raw)
    assert broken, "the sample PDF should contain a word hyphenated across a line break"
    corpus = load_domain_corpus(DomainDataConfig(pdf=SAMPLE_PDF, heldout_fraction=0.2))
    text = corpus.train_text + corpus.heldout_text
    for left, right in broken:
        assert left + right in text and f"{left}-\n" not in text
    assert "Plain-Language Guide" not in text  # the running header
    k = len(corpus.heldout_sections)
    assert 1 <= k < len(corpus.sections) and corpus.heldout_sections == corpus.sections[-k:]
    train_ids = tiny_tokenizer(corpus.train_text, add_special_tokens=False)["input_ids"]
    decoded = [tiny_tokenizer.decode(w) for w in token_windows(train_ids, 32, 16)]
    for section in corpus.heldout_sections:
        probe = tiny_tokenizer.decode(tiny_tokenizer(section.text.split("\n\n")[1], add_special_tokens=False)["input_ids"][:12])
        assert not any(probe in window for window in decoded)


def test_split_fingerprint_changes_with_the_fraction():
    first = load_domain_corpus(DomainDataConfig(pdf=SAMPLE_PDF, heldout_fraction=0.1))
    second = load_domain_corpus(DomainDataConfig(pdf=SAMPLE_PDF, heldout_fraction=0.4))
    assert len(second.heldout_sections) > len(first.heldout_sections)
    assert first.split_fingerprint() != second.split_fingerprint()
    assert first.documents_fingerprint() == second.documents_fingerprint() == ("domain_pdf", sha256_file(SAMPLE_PDF))


def test_missing_pdf(tmp_path):
    with pytest.raises(HarnessError, match="not found"):
        load_domain_corpus(DomainDataConfig(pdf=tmp_path / "absent.pdf"))


def test_not_a_pdf(tmp_path):
    fake = tmp_path / "notes.pdf"
    fake.write_text("just some text, not a PDF\n" * 20)
    with pytest.raises(HarnessError, match="not a PDF"):
        load_domain_corpus(DomainDataConfig(pdf=fake))


def test_password_protected_pdf(tmp_path, make_pdf):
    pdf = make_pdf(tmp_path, ["# Locked\n\n" + body(1)], user_password="secret")
    with pytest.raises(HarnessError, match="password-protected"):
        load_domain_corpus(DomainDataConfig(pdf=pdf))


def test_encrypted_pdf_with_empty_user_password_opens(tmp_path, make_pdf):
    pdf = make_pdf(tmp_path, ["# First\n\n" + body(1), "# Second\n\n" + body(2)], user_password="")
    corpus = load_domain_corpus(DomainDataConfig(pdf=pdf, heldout_fraction=0.5))
    assert [s.title for s in corpus.sections] == ["First", "Second"]


def test_pdf_without_text_looks_scanned(tmp_path, make_pdf):
    pdf = make_pdf(tmp_path, ["", ""])
    with pytest.raises(HarnessError, match="looks scanned"):
        load_domain_corpus(DomainDataConfig(pdf=pdf))


def test_pdf_with_zero_pages(tmp_path):
    path = tmp_path / "empty.pdf"
    with path.open("wb") as handle:
        PdfWriter().write(handle)
    with pytest.raises(HarnessError, match="0 pages"):
        load_domain_corpus(DomainDataConfig(pdf=path))


def test_truncated_pdf(tmp_path, make_pdf):
    whole = make_pdf(tmp_path, [f"# Topic\n\n{body(seed)}" for seed in range(3)]).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(HarnessError, match="truncated"):
        load_domain_corpus(DomainDataConfig(pdf=cut))


@pytest.mark.parametrize("fraction", [0, -0.1, 0.6, 1.0])
def test_heldout_fraction_outside_range_is_a_config_error(write_config, fraction):
    with pytest.raises(HarnessError, match="heldout_fraction"):
        load_config(write_config(domain={"heldout_fraction": fraction}))


def test_heldout_fraction_half_is_allowed(write_config):
    assert load_config(write_config(domain={"heldout_fraction": 0.5})).data.domain.heldout_fraction == 0.5


# ---- the shared real documents ----


def test_nimh_brochure_sections(shared_data):
    corpus = load_domain_corpus(DomainDataConfig(pdf=shared_data / "domain" / "nimh_bipolar_disorder_22-MH-8088.pdf"))
    titles = [s.title for s in corpus.sections]
    assert corpus.pages == 8
    assert {"What is bipolar disorder?", "How is bipolar disorder treated?", "Psychotherapy"} <= set(titles)
    assert 0.05 <= len(corpus.heldout_text) / corpus.chars <= 0.2


def test_surgeon_general_running_header_removed(shared_data):
    pdf = shared_data / "domain" / "surgeon_general_protecting_youth_mental_health_2021.pdf"
    corpus = load_domain_corpus(DomainDataConfig(pdf=pdf))
    text = corpus.train_text + corpus.heldout_text
    assert corpus.pages == 53
    assert "Advisory \n" not in text and "Protecting Youth Mental Health: The U.S. Surgeon General’s Advisory" not in text
    assert "all-of-society" in text  # a compound split across a line keeps its hyphen
    assert all(len(s.text) <= 8000 for s in corpus.sections)


# ---- a corpus of several documents ----

NOTES_TXT = (
    "Caring for a Friend\n\n"
    + body(7, 14)
    + "\n\nWhen to Ask for Help\n\n"
    + body(8, 14)
    + "\n\nLooking After Yourself\n\n"
    + body(9, 14)
    + "\n"
)
LEAFLET_MD = (
    "# Sleep and mood\n\n"
    "Poor **sleep** and low mood feed each other; see [the NHS page](https://www.nhs.uk/) for more.\n\n"
    + body(10, 14)
    + "\n\n## What helps at night\n\n- Keep the same wake-up time.\n- Put screens away an hour before bed.\n\n"
    + body(11, 14)
    + "\n\n---\n\n## A note on `caffeine`\n\n"
    + body(12, 14)
    + "\n"
)


@pytest.fixture
def mixed_folder(tmp_path, make_pdf) -> Path:
    """A folder with a PDF, a plain-text file and a Markdown file, plus a file that is no document."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    make_pdf(folder, [f"# Topic {name}\n\n{body(seed)}" for seed, name in enumerate(("One", "Two", "Three"))], name="a_guide.pdf")
    (folder / "b_notes.txt").write_text(NOTES_TXT, encoding="utf-8")
    (folder / "c_leaflet.md").write_text(LEAFLET_MD, encoding="utf-8")
    (folder / "ignored.csv").write_text("not,a,document\n", encoding="utf-8")
    return folder


def test_a_folder_mixing_pdf_text_and_markdown_is_one_corpus(mixed_folder):
    corpus = load_domain_corpus(DomainDataConfig(documents=[mixed_folder], heldout_fraction=0.3))
    assert [(d.path.name, d.kind, d.split) for d in corpus.documents] == [
        ("a_guide.pdf", "pdf", "train+heldout"), ("b_notes.txt", "text", "train+heldout"), ("c_leaflet.md", "markdown", "train+heldout"),
    ]
    assert [s.index for s in corpus.sections] == list(range(len(corpus.sections)))
    assert corpus.sections == corpus.train_sections + corpus.heldout_sections
    assert {s.document for s in corpus.heldout_sections} == {"a_guide.pdf", "b_notes.txt", "c_leaflet.md"}
    assert corpus.pages == 3 + 1 + 1 and corpus.chars == sum(d.chars for d in corpus.documents)
    leaflet = [s.title for s in corpus.sections if s.document == "c_leaflet.md"]
    assert leaflet == ["Sleep and mood", "What helps at night", "A note on caffeine"], "Markdown headings open sections whatever their case"
    assert [s.title for s in corpus.sections if s.document == "b_notes.txt"] == ["Caring for a Friend", "When to Ask for Help", "Looking After Yourself"]
    text = corpus.train_text + corpus.heldout_text
    assert "Poor sleep and low mood feed each other; see the NHS page for more." in text
    assert not re.search(r"\*\*|\]\(|^#|`|^---$", text, re.MULTILINE)
    assert corpus.documents_fingerprint()[0] == "domain_documents"


def test_heldout_by_documents_holds_out_whole_trailing_documents(mixed_folder):
    cfg = DomainDataConfig(documents=[mixed_folder], heldout_by="documents", heldout_fraction=0.3)
    corpus = load_domain_corpus(cfg)
    assert [d.split for d in corpus.documents] == ["train", "train", "heldout"]
    assert {s.document for s in corpus.heldout_sections} == {"c_leaflet.md"}
    assert corpus.heldout_text == "\n\n".join(s.text for s in corpus.documents[-1].sections)
    by_sections = load_domain_corpus(cfg.model_copy(update={"heldout_by": "sections"}))
    assert by_sections.split_fingerprint() != corpus.split_fingerprint()
    assert by_sections.documents_fingerprint() == corpus.documents_fingerprint()


def test_a_list_keeps_its_order_and_names_each_file_once(mixed_folder):
    notes, guide = mixed_folder / "b_notes.txt", mixed_folder / "a_guide.pdf"
    corpus = load_domain_corpus(DomainDataConfig(documents=[notes, guide, notes], heldout_by="documents", heldout_fraction=0.5))
    assert [(d.path.name, d.split) for d in corpus.documents] == [("b_notes.txt", "train"), ("a_guide.pdf", "heldout")]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "absent.txt", r"absent.txt: domain document not found"),
        (lambda root: (root / "table.csv").write_text("a,b\n") and root / "table.csv", r"table.csv: unsupported document type '.csv'"),
        (lambda root: (root / "empty").mkdir() or root / "empty", r"empty: folder holds no .pdf, .txt or .md file"),
        (lambda root: (root / "latin1.txt").write_bytes("Caf\xe9 notes\n".encode("latin-1")) and root / "latin1.txt", r"latin1.txt: line 1 is not UTF-8"),
        (lambda root: (root / "blank.md").write_text("#\n\n---\n") and root / "blank.md", r"blank.md: no extractable text; remove it"),
    ],
)
def test_a_bad_document_is_a_one_line_error_naming_the_file(tmp_path, make, message):
    with pytest.raises(HarnessError, match=message) as caught:
        load_domain_corpus(DomainDataConfig(documents=[make(tmp_path)]))
    assert "\n" not in str(caught.value)


def test_heldout_by_documents_needs_two_documents():
    with pytest.raises(HarnessError, match=r"heldout_by: documents needs at least two documents"):
        load_domain_corpus(DomainDataConfig(documents=[SAMPLE_PDF], heldout_by="documents"))


def test_a_one_sentence_document_names_itself_when_sections_are_held_out(tmp_path):
    (tmp_path / "short.txt").write_text("Just one sentence here\n")
    with pytest.raises(HarnessError, match=r"short.txt: a single sentence of text.*heldout_by: documents"):
        load_domain_corpus(DomainDataConfig(documents=[tmp_path / "short.txt", SAMPLE_PDF]))


def test_markdown_prose_keeps_words_and_headings_only():
    text, headings = markdown_prose(
        "## Why **rest** matters ##\n> Quoted *advice* from [a leaflet](http://x.org).\n\n```\n|---|---|\n"
        "![chart](c.png) shows `sleep_hours`\n* * *\n- a bullet stays\n"
    )
    assert headings == ["Why rest matters"]
    assert text.split("\n") == ["", "Why rest matters", "", "Quoted advice from a leaflet.", "", "", "", "chart shows sleep_hours", "", "- a bullet stays", ""]


def test_the_two_shared_pdfs_as_one_corpus(shared_data):
    corpus = load_domain_corpus(DomainDataConfig(documents=[shared_data / "domain"], heldout_fraction=0.1))
    assert [(d.path.name, d.pages, d.split) for d in corpus.documents] == [
        ("nimh_bipolar_disorder_22-MH-8088.pdf", 8, "train+heldout"),
        ("surgeon_general_protecting_youth_mental_health_2021.pdf", 53, "train+heldout"),
    ]
    for document in corpus.documents:
        alone = load_domain_corpus(DomainDataConfig(documents=[document.path], heldout_fraction=0.1))
        assert [s.text for s in alone.heldout_sections] == [s.text for s in document.heldout_sections], "each document splits as it would alone"
        assert alone.documents_fingerprint() == ("domain_pdf", document.sha256)
