"""Domain PDF -> cleaned text -> sections -> a contiguous held-out split -> training windows.

The held-out part is the trailing run of whole sections, never random overlapping chunks: a model
trained on windows that overlap its test text reports a perplexity that is too good to be true.
Cleanup steps are small pure functions so each can be tested on hand-made strings.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PyPdfError

from harness.config import DomainDataConfig
from harness.errors import HarnessError
from harness.fingerprint import sha256_file, sha256_texts

MIN_SECTION_CHARS = 300
MAX_SECTION_CHARS = 6000
PAGE_GROUP_CHARS = 3000
_PAGE_BREAK = "\f"
_BULLETS = "●•▪‣◦-–—*·"
_MINOR_WORDS = frozenset(
    "a an and as at but by for from in into of on or over per the to up via vs with without your their its".split()
)


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


# ---- cleanup: pure functions on strings ----


def collapse_whitespace(text: str) -> str:
    """Single spaces inside lines, no trailing spaces, at most one blank line; drops soft hyphens."""
    text = text.replace("\u00ad", "").replace("\u200b", "").replace("\u00a0", " ")
    lines = [re.sub(r"[ \t\r\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def mask_digits(line: str) -> str:
    """The form a running header/footer is compared in: digits masked, case and spacing ignored."""
    return re.sub(r"\d+", "#", " ".join(line.split())).casefold()


def is_page_number(line: str) -> bool:
    """A bare page number such as "7", "- 7 -", "Page 7", "7 of 40" or a lower-case roman numeral."""
    text = line.strip()
    if re.fullmatch(r"[ivxlc]{1,6}", text):
        return True
    return re.fullmatch(r"(?i)(page\s*)?[-–—\s]*\d{1,4}(\s*(of|/)\s*\d{1,4})?[-–—\s]*", text) is not None


def find_running_lines(page_lines: list[list[str]], min_share: float = 0.5, edge: int = 3) -> set[str]:
    """Masked lines found among the first or last `edge` lines of at least `min_share` of the pages."""
    counts: Counter[str] = Counter()
    for lines in page_lines:
        nonblank = [line for line in lines if line.strip()]
        counts.update({mask_digits(line) for line in nonblank[:edge] + nonblank[-edge:]})
    needed = max(2, math.ceil(min_share * len(page_lines)))
    return {masked for masked, count in counts.items() if count >= needed and re.search(r"[^\W\d_]", masked)}


def strip_page_furniture(lines: list[str], running: Collection[str], edge: int = 3) -> list[str]:
    """Drop running headers/footers (only near the top or bottom of the page) and bare page numbers."""
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    edges = set(nonblank[:edge] + nonblank[-edge:])
    return [
        line
        for i, line in enumerate(lines)
        if not is_page_number(line)
        if not (i in edges and mask_digits(line) in running)
    ]


def hyphenated_words(text: str) -> set[str]:
    """Hyphenated compounds written on one line ("self-esteem"): evidence that a split one keeps its hyphen."""
    return {match.casefold() for match in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)+", text)}


def dehyphenate(text: str, keep_hyphen: Collection[str] = ()) -> str:
    """Rejoin words split across a line break: "treat-\\nment" -> "treatment".

    The hyphen stays when the compound occurs unbroken in `keep_hyphen`, when the left part already
    holds a hyphen ("all-of-\\nsociety") or the right part does not start in lower case ("COVID-\\n19").
    """

    def rejoin(match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        last_part = left.rsplit("-", 1)[-1]
        keep = "-" in left or not right[0].islower() or f"{last_part}-{right}".casefold() in keep_hyphen
        return f"{left}-{right}" if keep else f"{left}{right}"

    return re.sub(r"([^\W\d_][\w-]*?)-[ \t]*\n[ \t]*(\w+)", rejoin, text)


def ends_sentence(line: str) -> bool:
    """Ends with sentence punctuation; a URL cut after a dot ("https://doi.") does not count."""
    words = line.split()
    if words and re.search(r"://|www\.|doi\.org", words[-1]):
        return False
    return re.search(r"[.!?:][\"'”’)\]]*$", line.rstrip()) is not None


def is_bullet(line: str) -> bool:
    return re.match(rf"[{re.escape(_BULLETS)}]\s", line.strip() + " ") is not None and len(line.strip()) > 1


def looks_like_heading(line: str) -> bool:
    """Shape of a heading: short, starts with a capital (or "2.1 "), no final period or comma, and
    title case, ALL CAPS or a question. Context (what comes before and after) is checked by the caller."""
    text = line.strip()
    numbered = re.match(r"\d{1,2}(\.\d{1,2})*\.?\s+(?=[A-Z])", text)
    body = text[numbered.end() :] if numbered else text
    words = body.split()
    if not 2 <= len(body) <= 90 or len(words) > 12 or not body[0].isupper():
        return False
    if re.search(r"[.,;:\-–—/&]$", body) or re.search(r"[^\W\d_]{2,}[.;]\s", body):
        return False
    if "://" in body or "www." in body or "@" in body or words[-1].casefold() in _MINOR_WORDS:
        return False
    if sum(c.isalpha() for c in body) < 2:
        return False
    letters = [c for c in body if c.isalpha()]
    if all(c.isupper() for c in letters) or body.endswith("?"):
        return True
    content = [w for w in words if w.casefold().strip("()\"'") not in _MINOR_WORDS] or words
    capitalised = sum(1 for w in content if w.lstrip("(\"'“‘")[:1].isupper() or w[:1].isdigit())
    return capitalised / len(content) >= 0.75


def typical_line_width(lines: list[str]) -> int:
    """The 90th-percentile length of full-looking lines: a line well short of it ends a paragraph."""
    lengths = sorted(len(line) for line in lines if len(line) >= 20)
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 80


def join_lines(lines: list[str]) -> str:
    """Join the lines of one paragraph; drop caps ("B" + "ut ...") and dashes/slashes join without a space."""
    text = ""
    for line in lines:
        tight = (len(text) == 1 and text.isupper() and line[:1].islower()) or text.endswith(("—", "/"))
        text = f"{text}{line}" if tight or not text else f"{text} {line}"
    return text


# ---- blocks (headings and paragraphs) and sections ----


@dataclass(frozen=True)
class _Block:
    heading: bool
    text: str
    page: int


def _page_lines_to_text(page_lines: list[list[str]]) -> str:
    running = find_running_lines(page_lines)
    pages = [collapse_whitespace("\n".join(strip_page_furniture(lines, running))) for lines in page_lines]
    text = f"\n{_PAGE_BREAK}\n".join(pages)
    return dehyphenate(text, hyphenated_words(text))


def _blocks(text: str) -> list[_Block]:
    """Walk the cleaned lines: headings (by shape and context) and paragraphs (broken lines joined)."""
    entries: list[tuple[int, str]] = []
    page = 1
    for line in text.split("\n"):
        if line == _PAGE_BREAK:
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
        if last_was_heading and line[:1].islower() and _heading_tail(line) and looks_like_heading(f"{blocks[-1].text} {line}"):
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


def build_sections(blocks: list[_Block], min_chars: int = MIN_SECTION_CHARS, max_chars: int = MAX_SECTION_CHARS) -> list[Section]:
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
            if not raw or sum(len(b.text) for b in raw[-1][1]) >= PAGE_GROUP_CHARS:
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
    except PyPdfError as exc:
        raise HarnessError(f"{path}: not a readable PDF ({exc}); {fix}") from exc
    if pages == 0:
        raise HarnessError(f"{path}: PDF has 0 pages; {fix}")
    return reader


def _extract_page_lines(reader: PdfReader, path: Path) -> list[list[str]]:
    page_lines: list[list[str]] = []
    for number, page in enumerate(reader.pages, 1):
        try:
            page_lines.append((page.extract_text() or "").split("\n"))
        except PyPdfError as exc:
            raise HarnessError(f"{path}: page {number} cannot be read ({exc}); the PDF may be damaged, export it again") from exc
    return page_lines


def load_domain_corpus(cfg: DomainDataConfig) -> DomainCorpus:
    """Extract, clean, section and split the domain PDF named by `data.domain.pdf`."""
    path = Path(cfg.pdf)
    reader = _open_pdf(path)
    page_lines = _extract_page_lines(reader, path)
    blocks = _blocks(_page_lines_to_text(page_lines))
    if not any(re.search(r"\w", block.text) for block in blocks):
        raise HarnessError(f"{path}: no extractable text (looks scanned); run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)")
    train, heldout = split_heldout(build_sections(blocks), cfg.heldout_fraction)
    sections = [Section(i, s.title, s.text, s.first_page) for i, s in enumerate(train + heldout)]
    return DomainCorpus(
        pdf_path=path,
        pdf_sha256=sha256_file(path),
        pages=len(page_lines),
        chars=sum(len(s.text) for s in sections),
        sections=sections,
        train_sections=sections[: len(train)],
        heldout_sections=sections[len(train) :],
    )
