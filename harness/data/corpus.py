"""Domain documents -> cleaned text -> sections -> a held-out split -> training windows.

The held-out part is whole sections, never random overlapping chunks: a model trained on windows that
overlap its test text reports a perplexity that is too good to be true. It is either the trailing
sections of every document (`heldout_by: sections`) or whole trailing documents (`heldout_by:
documents`). Page-level cleanup lives in `harness.data.pdf_cleanup`; reading each file, in
`harness.data.documents`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from harness.run.config import DomainDataConfig
from harness.core.errors import HarnessError
from harness.core.fingerprint import sha256_texts
from harness.data.documents import DomainDocument, document_paths, read_document
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
    document: str = ""
    """The file name of the document the section comes from."""


@dataclass(frozen=True)
class CorpusDocument:
    """One document of the corpus with its own part of the split."""

    path: Path
    kind: str
    """`pdf`, `text` or `markdown`."""
    sha256: str
    pages: int
    train_sections: list[Section]
    heldout_sections: list[Section]

    @property
    def sections(self) -> list[Section]:
        return sorted(self.train_sections + self.heldout_sections, key=lambda s: s.index)

    @property
    def chars(self) -> int:
        return sum(len(s.text) for s in self.sections)

    @property
    def split(self) -> str:
        """`train`, `heldout`, or `train+heldout` (its trailing sections held out)."""
        return "+".join(name for name, part in (("train", self.train_sections), ("heldout", self.heldout_sections)) if part)


@dataclass(frozen=True)
class DomainCorpus:
    documents: list[CorpusDocument]
    heldout_by: str
    """`sections` (each document's trailing sections) or `documents` (whole trailing documents)."""

    @property
    def train_sections(self) -> list[Section]:
        return [s for document in self.documents for s in document.train_sections]

    @property
    def heldout_sections(self) -> list[Section]:
        return [s for document in self.documents for s in document.heldout_sections]

    @property
    def sections(self) -> list[Section]:
        """Every section, the training ones first (indexes count in this order)."""
        return self.train_sections + self.heldout_sections

    @property
    def pages(self) -> int:
        return sum(document.pages for document in self.documents)

    @property
    def chars(self) -> int:
        """Characters of cleaned text over all sections."""
        return sum(document.chars for document in self.documents)

    @property
    def train_text(self) -> str:
        return join_sections(self.train_sections)

    @property
    def heldout_text(self) -> str:
        return join_sections(self.heldout_sections)

    def documents_fingerprint(self) -> tuple[str, str]:
        """(key, sha256) of the documents' bytes, names and order. One PDF keeps the key and file hash runs
        recorded before corpora had several documents, so their checkpoints stay valid."""
        if len(self.documents) == 1 and self.documents[0].kind == "pdf":
            return "domain_pdf", self.documents[0].sha256
        return "domain_documents", sha256_texts(*(f"{d.path.name}\t{d.sha256}" for d in self.documents))

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


def sections_from_pages(page_texts: list[str], headings: frozenset[str] = frozenset()) -> list[Section]:
    """Extracted page texts -> cleaned sections (empty when there is no text at all).

    `headings` are lines the file itself marks as headings (Markdown); others are found by their shape.
    """
    blocks = [block for block in _blocks(clean_pages(page_texts), headings) if re.search(r"\w", block.text)]
    return _build_sections(blocks) if blocks else []


def _blocks(text: str, headings: frozenset[str]) -> list[_Block]:
    """Walk the cleaned lines: headings (marked, or by shape and context) and paragraphs (broken lines joined)."""
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
        if line in headings:
            flush()
            blocks.append(_Block(True, line, page))
            last_was_heading = True
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


def _trailing_count(sizes: list[int], fraction: float) -> int:
    """How many trailing items (at least one, all but one at most) make the share of `sizes` closest to `fraction`."""
    total = sum(sizes)
    return min(range(1, len(sizes)), key=lambda k: abs(sum(sizes[-k:]) / total - fraction))


def split_heldout(sections: list[Section], fraction: float) -> tuple[list[Section], list[Section]]:
    """(train, held-out): the trailing whole sections whose character share is closest to `fraction`.

    At least one section is held out and at least one kept for training; a single section is first cut
    in two at the paragraph (else sentence) boundary nearest the requested share.
    """
    if len(sections) == 1:
        sections = _split_single_section(sections[0], fraction)
    best = _trailing_count([len(section.text) for section in sections], fraction)
    return sections[:-best], sections[-best:]


def _split_single_section(section: Section, fraction: float) -> list[Section]:
    text = section.text
    paragraph_cuts = [m.start() for m in re.finditer(r"\n\n", text)]
    cuts = paragraph_cuts or [m.start() for m in re.finditer(r"(?<=[.!?])\s+(?=\S)", text)]
    if not cuts:
        raise HarnessError(
            f"{section.document or 'a domain document'}: a single sentence of text, nothing of it can be held out; "
            "use a longer document, or set data.domain.heldout_by: documents to hold out whole documents"
        )
    target = (1 - fraction) * len(text)
    cut = min(cuts, key=lambda c: abs(c - target))
    head, tail = text[:cut].strip(), text[cut:].strip()
    return [
        Section(0, section.title, head, section.first_page, section.document),
        Section(1, f"{section.title} (continued)", tail, section.first_page, section.document),
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


# ---- the corpus ----


def _document_sections(document: DomainDocument) -> list[Section]:
    found = sections_from_pages(document.page_texts, document.headings)
    if not found:
        fix = "run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)" if document.kind == "pdf" else "remove it from data.domain.documents"
        looks = " (looks scanned)" if document.kind == "pdf" else ""
        raise HarnessError(f"{document.path}: no extractable text{looks}; {fix}")
    return [Section(s.index, s.title, s.text, s.first_page, document.path.name) for s in found]


def _split_documents(sectioned: list[list[Section]], cfg: DomainDataConfig) -> list[tuple[list[Section], list[Section]]]:
    """(train, held-out) sections of each document, by the configured unit."""
    if cfg.heldout_by == "sections":
        return [split_heldout(sections, cfg.heldout_fraction) for sections in sectioned]
    if len(sectioned) < 2:
        raise HarnessError(
            "data.domain.heldout_by: documents needs at least two documents and data.domain.documents names one; "
            "add documents or set heldout_by: sections"
        )
    held = _trailing_count([len(join_sections(sections)) for sections in sectioned], cfg.heldout_fraction)
    return [(sections, []) for sections in sectioned[:-held]] + [([], sections) for sections in sectioned[-held:]]


def load_domain_corpus(cfg: DomainDataConfig) -> DomainCorpus:
    """Read, clean, section and split every document `data.domain.documents` names."""
    documents = [read_document(path) for path in document_paths(cfg.documents)]
    parts = _split_documents([_document_sections(document) for document in documents], cfg)
    train_count = sum(len(train) for train, _ in parts)
    numbered: list[CorpusDocument] = []
    next_train, next_heldout = 0, train_count
    for document, (train, heldout) in zip(documents, parts, strict=True):
        train = [Section(next_train + i, s.title, s.text, s.first_page, s.document) for i, s in enumerate(train)]
        heldout = [Section(next_heldout + i, s.title, s.text, s.first_page, s.document) for i, s in enumerate(heldout)]
        next_train, next_heldout = next_train + len(train), next_heldout + len(heldout)
        numbered.append(CorpusDocument(document.path, document.kind, document.sha256, len(document.page_texts), train, heldout))
    return DomainCorpus(documents=numbered, heldout_by=cfg.heldout_by)
