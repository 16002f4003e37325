"""The domain documents: which files `data.domain.documents` names, and the text of each one by page.

A corpus is rarely one PDF: a clinic has a folder of leaflets, guidelines and notes. Each entry of
`data.domain.documents` is a PDF, a plain-text or Markdown file, or a folder holding such files (read
in name order, not recursively). Every document is turned into page texts here and cleaned the same
way afterwards (`harness.data.pdf_cleanup`); a text file is one page unless it holds form feeds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, DeprecationError, PyPdfError

from harness.core.errors import HarnessError, first_line
from harness.core.fingerprint import sha256_file

DOCUMENT_KINDS = {".pdf": "pdf", ".txt": "text", ".md": "markdown", ".markdown": "markdown"}
"""File suffix (lower case) -> how the document is read."""

_FIX = "point data.domain.documents at PDF, .txt or .md files or folders of them"


@dataclass(frozen=True)
class DomainDocument:
    path: Path
    kind: str
    """`pdf`, `text` or `markdown`."""
    sha256: str
    page_texts: list[str]
    """Raw extracted text of each page (a text file: one page per form-feed-separated part)."""
    headings: frozenset[str] = frozenset()
    """Lines the file marks as headings (Markdown `#`); a PDF's and a plain text's are found by their shape."""


def document_paths(entries: list[Path]) -> list[Path]:
    """Every document file the entries name, in their order (a folder's files by name), each once."""
    found: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            inside = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in DOCUMENT_KINDS)
            if not inside:
                raise HarnessError(f"{entry}: folder holds no .pdf, .txt or .md file; {_FIX}")
            found.extend(inside)
        elif not entry.is_file():
            raise HarnessError(f"{entry}: domain document not found; {_FIX} that exist")
        elif entry.suffix.lower() not in DOCUMENT_KINDS:
            raise HarnessError(f"{entry}: unsupported document type {entry.suffix or '(no suffix)'!r}; {_FIX}")
        else:
            found.append(entry)
    return list(dict.fromkeys(found))


def read_document(path: Path) -> DomainDocument:
    kind = DOCUMENT_KINDS[path.suffix.lower()]
    if kind == "pdf":
        return DomainDocument(path, kind, sha256_file(path), _extract_page_texts(_open_pdf(path), path))
    pages = _read_text_file(path).split("\f")
    if kind == "text":
        return DomainDocument(path, kind, sha256_file(path), pages)
    prose = [markdown_prose(page) for page in pages]
    headings = frozenset(heading for _, found in prose for heading in found)
    return DomainDocument(path, kind, sha256_file(path), [text for text, _ in prose], headings)


# ---- text and Markdown files ----


def _read_text_file(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise HarnessError(f"{path}: line {line} is not UTF-8 text; save the file as UTF-8") from exc


_MD_BLOCK_MARKUP = re.compile(r"\s{0,3}(?:(?:```|~~~).*|(?:[-*_]\s*){3,}|\|?(?:\s*:?-{3,}:?\s*\|)+\s*(?::?-{3,}:?)?\s*)")
"""A line that is only markup: a code fence, a horizontal rule, a table's header rule."""
_MD_HEADING = re.compile(r"\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*")
_MD_INLINE: tuple[tuple[str, str], ...] = (
    (r"!\[([^\]]*)\]\([^)]*\)", r"\1"),
    (r"\[([^\]]+)\]\([^)]*\)", r"\1"),
    (r"<(https?://[^>]+)>", r"\1"),
    (r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", r"\2"),
    (r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])", r"\1"),
    (r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])", r"\1"),
    (r"`([^`\n]+)`", r"\1"),
)
"""Inline markup whose text stays: images and links (their text), autolinks, emphasis, inline code."""


def markdown_prose(text: str) -> tuple[str, list[str]]:
    """(the prose of a Markdown text, its heading lines), so a model trains on words, not `#`, `**` or `](url)`.

    A heading is set apart by blank lines and returned, so the sectioning opens a section there whatever
    its shape (a sentence-case heading does not look like one to the PDF rules). Bullets stay: the
    cleanup treats `- item` as a list item. Quote marks go; code-fence, rule and table-rule lines go.
    """
    lines: list[str] = []
    headings: list[str] = []
    for line in text.split("\n"):
        if _MD_BLOCK_MARKUP.fullmatch(line):
            lines.append("")
            continue
        heading = _MD_HEADING.fullmatch(line)
        line = re.sub(r"^\s{0,3}>\s?", "", heading.group(1) if heading else line)
        for pattern, replacement in _MD_INLINE:
            line = re.sub(pattern, replacement, line)
        if heading:
            headings.append(" ".join(line.split()))
            lines.extend(["", line, ""])
        else:
            lines.append(line)
    return "\n".join(lines), headings


# ---- PDF files ----

_DAMAGED_PDF = (PyPdfError, DeprecationError, NotImplementedError, AttributeError, KeyError, IndexError, TypeError, ValueError, RecursionError)
"""What pypdf raises on a malformed file: its own errors, and Python's where a structure is not what it
expects (an unknown filter name, a dictionary where a number belongs). Only pypdf runs inside the calls
guarded by these, so they come from the file (found by tests/test_hostile_fuzz.py)."""


def _open_pdf(path: Path) -> PdfReader:
    fix = "replace it with a text-based PDF in data.domain.documents"
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
                "(e.g. `qpdf --decrypt --password=PW in.pdf out.pdf`) and point data.domain.documents at it"
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
