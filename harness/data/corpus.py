"""Domain PDF -> cleaned text -> sections -> a contiguous held-out split -> training windows.

The held-out part is the trailing run of whole sections, never random overlapping chunks: a model
trained on windows that overlap its test text reports a perplexity that is too good to be true.
Page-level cleanup of the extracted text lives in `harness.data.pdf_cleanup`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, DeprecationError, PyPdfError

from harness.run.config import DomainDataConfig
from harness.core.errors import HarnessError, first_line
from harness.core.fingerprint import sha256_file, sha256_texts
from harness.data.pdf_cleanup import (
    PAGE_BREAK,
    clean_pages,
    ends_sentence,
    is_bullet,
    join_lines,
    looks_like_heading,
    typical_line_width,
)

MIN_SECTION_CHARS = 300
MAX_SECTION_CHARS = 6000
PAGE_GROUP_CHARS = 3000


@dataclass(frozen=True)
class Section:
    index: int
    title: str
    """The heading text, or "Pages a-b" where the document has no usable headings."""
    text: str
    """The cleaned section text, heading included, paragraphs separated by blank lines."""
    first_page: int
    """1-based page on which the section starts."""


@dataclass(frozen=True)
class DomainCorpus:
    pdf_path: Path
    pdf_sha256: str
    pages: int
    chars: int
    """Characters of cleaned text over all sections."""
    sections: list[Section]
    train_sections: list[Section]
    heldout_sections: list[Section]

    @property
    def train_text(self) -> str:
        return join_sections(self.train_sections)

    @property
    def heldout_text(self) -> str:
        return join_sections(self.heldout_sections)

    def split_fingerprint(self) -> str:
        """sha256 of the exact train and held-out texts: changes whenever the split or cleanup does."""
        return sha256_texts(self.train_text, self.heldout_text)


def join_sections(sections: list[Section]) -> str:
    return "\n\n".join(section.text for section in sections)


# ---- blocks (headings and paragraphs) and sections ----


@dataclass(frozen=True)
class _Block:
    heading: bool
    text: str
    page: int


def sections_from_pages(page_texts: list[str]) -> list[Section]:
    """Extracted page texts -> cleaned sections (empty when there is no text at all)."""
    blocks = [block for block in _blocks(clean_pages(page_texts)) if re.search(r"\w", block.text)]
    return _build_sections(blocks) if blocks else []


def _blocks(text: str) -> list[_Block]:
    """Walk the cleaned lines: headings (by shape and context) and paragraphs (broken lines joined)."""
    entries: list[tuple[int, str]] = []
    page = 1
    for line in text.split("\n"):
        if line == PAGE_BREAK:
            page += 1
        else:
            entries.append((page, line))
    body = [line for _, line in entries if line]
    width = typical_line_width(body)
    blocks: list[_Block] = []
    pending: list[str] = []
    pending_page = 1

    def flush() -> None:
        if pending:
            blocks.append(_Block(False, join_lines(pending), pending_page))
            pending.clear()

    def neighbour(start: int, step: int) -> str | None:
        i = start + step
        while 0 <= i < len(entries) and not entries[i][1]:
            i += step
        return entries[i][1] if 0 <= i < len(entries) else None

    last_was_heading = False
    for i, (page, line) in enumerate(entries):
        if not line:
            flush()
            continue
        previous, following = neighbour(i, -1), neighbour(i, 1)
        context = previous is None or last_was_heading or ends_sentence(previous)
        opens_next = following is None or not following[:1].islower()
        wrapped = following is not None and _heading_tail(following) and looks_like_heading(f"{line} {following}")
        if context and ((opens_next and looks_like_heading(line)) or wrapped):
            flush()
            if last_was_heading and len(blocks[-1].text) + len(line) <= 100:
                blocks[-1] = _Block(True, f"{blocks[-1].text} {line}", blocks[-1].page)
            else:
                blocks.append(_Block(True, line, page))
            last_was_heading = True
            continue
        if last_was_heading and _heading_tail(line) and looks_like_heading(f"{blocks[-1].text} {line}"):
            blocks[-1] = _Block(True, f"{blocks[-1].text} {line}", blocks[-1].page)
            continue
        last_was_heading = False
        if is_bullet(line):
            flush()
        if not pending:
            pending_page = page
        pending.append(line)
        if ends_sentence(line) and len(line) < 0.85 * width:
            flush()
    flush()
    return blocks


def _heading_tail(line: str) -> bool:
    """Could be the lower-case second line of a wrapped heading ("Introduction from" / "the Surgeon General")."""
    return line[:1].islower() and len(line.split()) <= 6 and not ends_sentence(line)


def _split_long_text(text: str, limit: int) -> list[str]:
    """Cut text into about equal pieces of roughly at most `limit` chars at paragraph boundaries
    (sentence boundaries inside a paragraph that alone exceeds the limit)."""
    units: list[tuple[str, str]] = []
    for paragraph in text.split("\n\n"):
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])", paragraph) if len(paragraph) > limit else [paragraph]
        units.extend((sentence, " ") for sentence in sentences)
        units[-1] = (units[-1][0], "\n\n")
    target = len(text) / math.ceil(len(text) / limit)
    pieces: list[str] = []
    current = ""
    for unit, separator in units:
        current += unit + separator
        if len(current) >= target:
            pieces.append(current.strip())
            current = ""
    if current.strip():
        if pieces and len(current) < target / 2:
            current = pieces.pop() + "\n\n" + current
        pieces.append(current.strip())
    return pieces


def _build_sections(blocks: list[_Block], min_chars: int = MIN_SECTION_CHARS, max_chars: int = MAX_SECTION_CHARS) -> list[Section]:
    """Headings open sections; without headings, pages are grouped. Tiny sections merge into the next
    (the last into the one before); oversized ones are cut at paragraph boundaries."""
    raw: list[tuple[str | None, list[_Block]]] = []
    if any(block.heading for block in blocks):
        for block in blocks:
            if block.heading or not raw:
                raw.append((block.text if block.heading else None, []))
            raw[-1][1].append(block)
    else:
        for block in blocks:
            group = raw[-1][1] if raw else []
            if not raw or (block.page != group[-1].page and sum(len(b.text) for b in group) >= PAGE_GROUP_CHARS):
                raw.append((None, []))
            raw[-1][1].append(block)
    drafts = [(title or _pages_title(members), "\n\n".join(b.text for b in members), members[0].page) for title, members in raw]
    merged: list[tuple[str, str, int]] = []
    carry: tuple[str, str, int] | None = None
    for title, text, page in drafts:
        if carry:
            title, text, page = carry[0], f"{carry[1]}\n\n{text}", carry[2]
        carry = (title, text, page) if len(text) < min_chars else None
        if carry is None:
            merged.append((title, text, page))
    if carry:
        if merged:
            title, text, page = merged.pop()
            merged.append((title, f"{text}\n\n{carry[1]}", page))
        else:
            merged.append(carry)
    sections: list[Section] = []
    for title, text, page in merged:
        pieces = _split_long_text(text, max_chars) if len(text) > max_chars else [text]
        for part, piece in enumerate(pieces, 1):
            name = title if len(pieces) == 1 else f"{title} (part {part})"
            sections.append(Section(len(sections), name, piece, page))
    return sections


def _pages_title(blocks: list[_Block]) -> str:
    first, last = blocks[0].page, blocks[-1].page
    return f"Page {first}" if first == last else f"Pages {first}-{last}"


# ---- held-out split and windows ----


def split_heldout(sections: list[Section], fraction: float) -> tuple[list[Section], list[Section]]:
    """(train, held-out): the trailing whole sections whose character share is closest to `fraction`.

    At least one section is held out and at least one kept for training; a single section is first cut
    in two at the paragraph (else sentence) boundary nearest the requested share.
    """
    if len(sections) == 1:
        sections = _split_single_section(sections[0], fraction)
    sizes = [len(section.text) for section in sections]
    total = sum(sizes)
    best = min(range(1, len(sections)), key=lambda k: abs(sum(sizes[-k:]) / total - fraction))
    return sections[:-best], sections[-best:]


def _split_single_section(section: Section, fraction: float) -> list[Section]:
    text = section.text
    paragraph_cuts = [m.start() for m in re.finditer(r"\n\n", text)]
    cuts = paragraph_cuts or [m.start() for m in re.finditer(r"(?<=[.!?])\s+(?=\S)", text)]
    if not cuts:
        raise HarnessError(
            "the domain PDF has a single sentence of text; nothing can be held out. "
            "Use a longer document for data.domain.pdf"
        )
    target = (1 - fraction) * len(text)
    cut = min(cuts, key=lambda c: abs(c - target))
    head, tail = text[:cut].strip(), text[cut:].strip()
    return [
        Section(0, section.title, head, section.first_page),
        Section(1, f"{section.title} (continued)", tail, section.first_page),
    ]


def token_windows(token_ids: list[int], max_length: int, stride: int) -> list[list[int]]:
    """Windows of at most `max_length` tokens starting every `stride` tokens of ONE text.

    Windows start at 0, stride, 2*stride, ... until one reaches the end; the last window always ends
    at the final token, so the tail is covered even when `stride > max_length`.
    """
    if max_length < 1 or stride < 1:
        raise ValueError(f"max_length and stride must be >= 1, got {max_length} and {stride}")
    windows: list[list[int]] = []
    start = 0
    while start + max_length < len(token_ids):
        windows.append(token_ids[start : start + max_length])
        start += stride
    if token_ids:
        windows.append(token_ids[start:] if start < len(token_ids) else token_ids[-max_length:])
    return windows


# ---- reading the PDF ----

_DAMAGED_PDF = (PyPdfError, DeprecationError, NotImplementedError, AttributeError, KeyError, IndexError, TypeError, ValueError, RecursionError)
"""What pypdf raises on a malformed file: its own errors, and Python's where a structure is not what it
expects (an unknown filter name, a dictionary where a number belongs). Only pypdf runs inside the calls
guarded by these, so they come from the file (found by tests/test_hostile_fuzz.py)."""


def _open_pdf(path: Path) -> PdfReader:
    fix = "set data.domain.pdf to a text-based PDF"
    if not path.is_file():
        raise HarnessError(f"{path}: domain PDF not found; {fix} that exists")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(1024)
        handle.seek(max(0, size - 2048))
        tail = handle.read()
    if b"%PDF-" not in head:
        raise HarnessError(f"{path}: not a PDF (no %PDF- header); {fix}")
    if b"%%EOF" not in tail:
        raise HarnessError(f"{path}: PDF is truncated (no %%EOF marker at its end); download or export it again")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise HarnessError(
                f"{path}: PDF is password-protected; save a decrypted copy "
                "(e.g. `qpdf --decrypt --password=PW in.pdf out.pdf`) and point data.domain.pdf at it"
            )
        pages = len(reader.pages)
    except DependencyError as exc:
        raise HarnessError(f"{path}: PDF is encrypted and needs `pip install cryptography` to open ({exc})") from exc
    except _DAMAGED_PDF as exc:
        raise HarnessError(f"{path}: not a readable PDF ({first_line(exc)}); {fix}") from exc
    if pages == 0:
        raise HarnessError(f"{path}: PDF has 0 pages; {fix}")
    return reader


def _extract_page_texts(reader: PdfReader, path: Path) -> list[str]:
    texts: list[str] = []
    for number, page in enumerate(reader.pages, 1):
        try:
            texts.append(page.extract_text() or "")
        except _DAMAGED_PDF as exc:
            raise HarnessError(f"{path}: page {number} cannot be read ({first_line(exc)}); the PDF may be damaged, export it again") from exc
    return texts



def load_domain_corpus(cfg: DomainDataConfig) -> DomainCorpus:
    """Extract, clean, section and split the domain PDF named by `data.domain.pdf`."""
    path = Path(cfg.pdf)
    page_texts = _extract_page_texts(_open_pdf(path), path)
    found = sections_from_pages(page_texts)
    if not found:
        raise HarnessError(f"{path}: no extractable text (looks scanned); run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)")
    train, heldout = split_heldout(found, cfg.heldout_fraction)
    sections = [Section(i, s.title, s.text, s.first_page) for i, s in enumerate(train + heldout)]
    return DomainCorpus(
        pdf_path=path,
        pdf_sha256=sha256_file(path),
        pages=len(page_texts),
        chars=sum(len(s.text) for s in sections),
        sections=sections,
        train_sections=sections[: len(train)],
        heldout_sections=sections[len(train) :],
    )
