"""PDF text cleanup: each pure function on hand-made strings that mimic extracted pages."""

from __future__ import annotations

import pytest

from harness.data.pdf_cleanup import (
    clean_pages,
    collapse_whitespace,
    dehyphenate,
    find_running_lines,
    hyphenated_words,
    is_page_number,
    join_lines,
    looks_like_heading,
    mask_digits,
    strip_page_furniture,
)

WORDS = "amber birch cedar dune ember fern grove harbor iris juniper kestrel lagoon meadow nettle orchard pebble quill".split()


def test_collapse_whitespace_single_spaces_and_one_blank_line():
    text = "  Hello \t  world  \n\n\n\nsecond\u00a0line with a treat\u00adment  \n"
    assert collapse_whitespace(text) == "Hello world\n\nsecond line with a treatment"


@pytest.mark.parametrize("line", ["7", " 12 ", "- 7 -", "Page 3", "page 3 of 40", "3/40", "iv", "— 21 —"])
def test_bare_page_numbers_are_recognised(line):
    assert is_page_number(line)


@pytest.mark.parametrize("line", ["In 2019, 3 people", "Chapter 2", "IV", "7 habits of calm people", ""])
def test_lines_with_words_are_not_page_numbers(line):
    assert not is_page_number(line)


def test_mask_digits_makes_headers_with_page_numbers_equal():
    assert mask_digits("Annual  Report 2021 - page 3") == mask_digits("annual report 2021 - Page 14")
    assert mask_digits("Annual Report") != mask_digits("Annual Review")


def test_running_lines_need_half_the_pages_and_sit_at_the_edges():
    pages = [
        ["Guide to Calm 2024", *(f"Body line on {WORDS[i]} {WORDS[j]}." for j in range(4)), "Middle repeated line",
         *(f"More text on {WORDS[j]} {WORDS[i]}" for j in range(4)), f"Page {i}"]
        for i in range(1, 5)
    ]
    pages[3][0] = "A different opening"
    running = find_running_lines(pages)
    assert running == {mask_digits("Guide to Calm 2024"), mask_digits("Page 1")}  # 3 of 4 pages; every page
    assert mask_digits("Middle repeated line") not in running  # repeated, but never near the top or bottom


def test_running_lines_on_fewer_than_half_the_pages_are_kept():
    pages = [["Header", "text a"], ["Header", "text b"], ["Other", "text c"], ["Other 2", "text d"], ["x", "y"]]
    assert find_running_lines(pages) == set()


def test_strip_page_furniture_drops_header_and_number_but_keeps_body_numbers():
    running = {mask_digits("Guide to Calm 2024")}
    lines = ["Guide to Calm 2024", "In 2019, 3 people wrote in.", "Breathing helps.", "5"]
    assert strip_page_furniture(lines, running) == ["In 2019, 3 people wrote in.", "Breathing helps."]


def test_dehyphenate_joins_words_split_at_line_end():
    assert dehyphenate("the treat-\nment plan") == "the treatment\nplan"
    assert dehyphenate("your situ-\nation.\nNext line") == "your situation.\nNext line"


def test_dehyphenate_keeps_real_hyphens():
    assert dehyphenate("low self-esteem and\nmore") == "low self-esteem and\nmore"
    assert dehyphenate("low self-\nesteem today", keep_hyphen={"self-esteem"}) == "low self-esteem\ntoday"
    assert dehyphenate("the COVID-\n19 pandemic") == "the COVID-19\npandemic"
    assert dehyphenate("an all-of-\nsociety effort") == "an all-of-society\neffort"


def test_hyphenated_words_only_sees_unbroken_compounds():
    assert hyphenated_words("Self-esteem and well-being.\nA long-\nterm plan") == {"self-esteem", "well-being"}


def test_clean_pages_uses_the_documents_own_hyphenated_words():
    pages = ["Low self-esteem is common.\nWork on self-\nesteem and on treat-\nment.", "Second page text."]
    cleaned = clean_pages(pages)
    assert "on self-esteem" in cleaned and "treatment" in cleaned and "treat-" not in cleaned


@pytest.mark.parametrize(
    "line", ["Understanding Stress", "ANXIETY AND PANIC", "What is bipolar disorder?", "2.1 Sleep Hygiene", "Genes",
             "Conditions That Can Co-Occur With Bipolar Disorder"],
)
def test_heading_shapes(line):
    assert looks_like_heading(line)


@pytest.mark.parametrize(
    "line", ["the body releases hormones", "This is a whole sentence.", "Feeling very up, high, elated,",
             "www.nimh.nih.gov/health", "Introduction from", "B", "Pediatrics. DOI: 10.1542/peds.2021",
             "A long line that goes on and on with many many words well past any heading length limit"],
)
def test_non_heading_shapes(line):
    assert not looks_like_heading(line)


def test_join_lines_handles_drop_caps_and_dashes():
    assert join_lines(["B", "ut the road", "is long"]) == "But the road is long"
    assert join_lines(["challenges—", "in 2019"]) == "challenges—in 2019"
