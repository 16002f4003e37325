"""Cleanup of text extracted from a PDF, page by page, as small pure functions on strings.

PDF text extraction keeps what a reader's eye skips: running headers and footers, page numbers, words
hyphenated at a line end and every visual line break inside a paragraph. Left in, they would be trained on
and scored as if they were prose. The line-shape tests that tell a heading or a paragraph end from a
wrapped line live here too; `harness.data.corpus` uses them to build sections. Each step is a separate pure
function so it can be tested on a hand-made string.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Collection

PAGE_BREAK = "\f"
"""The line that separates pages in `clean_pages`'s output."""
_BULLETS = "●•▪‣◦-–—*·"
_MINOR_WORDS = frozenset(
    "a an and as at but by for from in into of on or over per the to up via vs with without your their its".split()
)


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
        left, right, trailing = match.group(1), match.group(2), match.group(3)
        last_part = left.rsplit("-", 1)[-1]
        keep = "-" in left or not right[0].islower() or f"{last_part}-{right}".casefold() in keep_hyphen
        rest_of_line = match.string[match.end() : match.end() + 1] not in ("", "\n")
        return f"{left}{'-' if keep else ''}{right}{trailing}{chr(10) if rest_of_line else ''}"

    return re.sub(r"([^\W\d_][\w-]*?)-[ \t]*\n[ \t]*(\w+)(\S*)[ \t]*", rejoin, text)


def ends_sentence(line: str) -> bool:
    """Ends with sentence punctuation; a URL cut after its first dot ("https://doi.") does not count."""
    words = line.split()
    if words and re.search(r"://|www\.", words[-1]):
        core = words[-1].rstrip(".")
        if "." not in core.split("://", 1)[-1] or core.endswith(("/", "-")):
            return False
    return re.search(r"[.!?:][\"'”’)\]]*$", line.rstrip()) is not None


def is_bullet(line: str) -> bool:
    return re.match(rf"[{re.escape(_BULLETS)}]\s+\S", line.strip()) is not None


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
    letters = [c for c in body if c.isalpha()]
    if len(letters) < 2:
        return False
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


def clean_pages(page_texts: list[str]) -> str:
    """Extracted page texts -> one cleaned text, pages separated by a form-feed line.

    Running headers/footers and page numbers go, whitespace is collapsed and split words rejoined.
    """
    page_lines = [text.split("\n") for text in page_texts]
    running = find_running_lines(page_lines)
    pages = [collapse_whitespace("\n".join(strip_page_furniture(lines, running))) for lines in page_lines]
    text = f"\n{PAGE_BREAK}\n".join(pages)
    return dehyphenate(text, hyphenated_words(text))
