"""The report renderer, on a saved fixture run: structure, numbers, verdict, escaping, no network, no torch."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.core.errors import HarnessError
from harness.run.results import SampleRecord
from harness.reports import render_report
from harness.reports.compare import classify_change
import harness.evals  # noqa: F401  (registers the evals whose presentations the report shows)
from harness.evals.registry import get_eval, registered_evals
from harness.reports.generations import generation_groups
from harness.run.lineage import Lineage
from harness.reports.markdown import escape_inline, quote_block
from harness.reports.safety import failure_of
from harness.reports.sections import section_perplexity, section_rows
from harness.reports.svg import nice_ticks

PRESENTED = {m.name: m.presentation for name in registered_evals() for m in get_eval(name).metrics}
"""How each registered metric is shown: the reports read the same presentations from the results files."""

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["Verdict", "Summary", "Plots", "Side-by-side generations", "Safety", "Data and leakage", "Run manifest"]
HOSTILE_PIECES = ["<script>document.title='pwned'</script>", "<img src=x onerror=alert(1)>", "</table>"]


@pytest.fixture
def rendered(run_dir: Path) -> tuple[str, str, Path]:
    paths = render_report(run_dir)
    assert [p.name for p in paths] == ["report.md", "report.html"] + ["README.md"] * 3, "then each trained arm's model card"
    return paths[0].read_text(encoding="utf-8"), paths[1].read_text(encoding="utf-8"), run_dir


def results_json(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "results").glob("*.json")}


def section_text(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def decimals_of(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def assert_displayed(shown: str, stored: float, percent: bool) -> None:
    """`shown` is `stored` rounded to the decimals it shows (x100 for percentages)."""
    expected = stored * 100 if percent else stored
    assert abs(float(shown) - expected) <= 0.5 * 10 ** -decimals_of(shown) + 1e-9, (shown, stored)


def expected_marker(p_value: float) -> str:
    return "**" if p_value < 0.01 else "*" if p_value < 0.05 else ""


def test_both_formats_have_every_section_in_order(rendered):
    markdown, html, _ = rendered
    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == SECTIONS
    assert re.findall(r"<h2>([^<]+)</h2>", html) == SECTIONS
    assert markdown.startswith("# Run report: fixture\n")


CELL = re.compile(
    r"^(?:\*\*)?(?P<value>-?[\d.]+)(?P<pct>%)?(?:\*\*)? \[(?P<lo>-?[\d.]+)%?, (?P<hi>-?[\d.]+)%?\]"
    r"(?: · Δ (?P<delta>[-+][\d.]+)(?: pp)?(?P<marker>\**))?(?P<flag> ⚠)?$"
)


def test_summary_table_numbers_equal_the_results_files(rendered):
    markdown, _, run_dir = rendered
    stored = results_json(run_dir)
    lines = [line for line in section_text(markdown, "Summary").splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    checkpoints = header[1:]
    assert checkpoints == ["base", "domain", "instruct-only", "instruct"], "the lineage table's training order"
    assert "<details>" not in section_text(markdown, "Summary"), "only a grid run folds its per-node tables"
    by_label = {d.label: name for name, d in PRESENTED.items()}
    seen = set()
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if cells[0] not in by_label and cells[0].rsplit(" ", 1)[0] not in by_label:
            break
        metric = by_label.get(cells[0]) or by_label[cells[0].rsplit(" ", 1)[0]]
        seen.add(metric)
        for checkpoint, cell in zip(checkpoints, cells[1:]):
            match = CELL.match(cell)
            assert match, cell
            value = stored[checkpoint]["metrics"][metric]
            percent = match["pct"] is not None
            assert percent == PRESENTED[metric].percent
            assert_displayed(match["value"], value["value"], percent)
            assert_displayed(match["lo"], value["ci_low"], percent)
            assert_displayed(match["hi"], value["ci_high"], percent)
            if checkpoint == "base":
                assert match["delta"] is None
                continue
            delta = stored[checkpoint]["deltas"][metric]["base"]
            assert_displayed(match["delta"], delta["delta"], percent)
            assert match["marker"] == expected_marker(delta["p_value"])
            regression = delta["p_value"] < 0.05 and value["higher_is_better"] is not None and (
                (delta["delta"] > 0) != value["higher_is_better"]
            )
            assert (match["flag"] is not None) == regression, (metric, checkpoint)
    assert seen == set(stored["base"]["metrics"])


def test_best_value_per_metric_is_bold(rendered):
    markdown, _, run_dir = rendered
    stored = results_json(run_dir)
    by_label = {d.label: name for name, d in PRESENTED.items()}
    checked = 0
    for line in section_text(markdown, "Summary").split("### Paired deltas")[0].splitlines():
        label = line[2:].split(" | ")[0].rstrip(" ↑↓") if line.startswith("| ") else ""
        if label not in by_label:
            continue
        metric = by_label[label]
        cells = [c.strip() for c in line.strip("|").split(" | ")][1:]
        values = [stored[c]["metrics"][metric] for c in ["base", "domain", "instruct-only", "instruct"]]
        higher = values[0]["higher_is_better"]
        if higher is None:
            assert not any(cell.startswith("**") for cell in cells)
            continue
        best = (max if higher else min)(v["value"] for v in values)
        tie = len({v["value"] for v in values}) == 1
        assert [cell.startswith("**") for cell in cells] == [v["value"] == best and not tie for v in values], metric
        checked += 1
    assert checked == len(PRESENTED)


def test_section_table_regroups_chunks_per_section(rendered):
    markdown, _, run_dir = rendered
    expected: dict[str, dict[str, list[float]]] = {}
    for checkpoint in ["base", "domain", "instruct-only", "instruct"]:
        for line in (run_dir / "samples" / checkpoint / "perplexity.jsonl").read_text().splitlines():
            record = json.loads(line)
            sums = expected.setdefault(record["extra"]["title"], {}).setdefault(checkpoint, [0.0, 0.0])
            sums[0] += record["values"]["heldout_perplexity"]
            sums[1] += record["weights"]["heldout_perplexity"]
    table = section_text(markdown, "Plots").split("### Held-out perplexity per section")[1]
    rows = [line for line in table.splitlines() if re.match(r"\| S\d+ \|", line)]
    assert len(rows) == len(expected) == 8
    for row in rows:
        cells = [c.strip().strip("*") for c in row.strip("|").split(" | ")]
        title = cells[1].replace("&lt;", "<").replace("&gt;", ">")
        for checkpoint, shown in zip(["base", "domain", "instruct-only", "instruct"], cells[3:]):
            nll, tokens = expected[title][checkpoint]
            assert_displayed(shown, math.exp(nll / tokens), percent=False)


def test_verdict_names_the_planted_regression(rendered):
    markdown, _, run_dir = rendered
    crisis = results_json(run_dir)["instruct"]["deltas"]["crisis_referral_rate"]["base"]
    assert crisis["p_value"] < 0.05 and crisis["delta"] < 0
    bullets = [line for line in section_text(markdown, "Verdict").splitlines() if line.startswith("- ")]
    crisis_lines = [b for b in bullets if "crisis referral rate from" in b and "instruct vs base" in b]
    assert len(crisis_lines) == 1 and crisis_lines[0].endswith("a regression.")


def test_verdict_calls_changes_only_when_significant(rendered):
    markdown, _, _ = rendered
    bullets = [line for line in section_text(markdown, "Verdict").splitlines() if re.search(r"p=[\d.e-]+\)", line)]
    assert len(bullets) >= 4
    endings = set()
    for bullet in bullets:
        p_value = float(re.search(r"p=([\d.e-]+)\)", bullet).group(1))
        ending = bullet.rsplit(":", 1)[-1] if not bullet.endswith("a regression.") else " a regression."
        endings.add(ending)
        if p_value < 0.05:
            assert ending in (" an improvement.", " a regression."), bullet
        else:
            assert ending == " no significant change.", bullet
    assert " no significant change." in endings and " an improvement." in endings


@pytest.mark.parametrize(
    "delta, p_value, higher, expected",
    [
        (-2.0, 0.01, False, "improvement"),
        (-2.0, 0.01, True, "regression"),
        (0.3, 0.049, True, "improvement"),
        (0.3, 0.05, True, "no significant change"),
        (0.3, 0.001, None, "changed"),
        (float("nan"), 0.001, True, "no significant change"),
    ],
)
def test_classify_change(delta, p_value, higher, expected):
    assert classify_change(delta, p_value, higher) == expected


def test_hostile_model_text_is_escaped_in_html(rendered):
    _, html, _ = rendered
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/table&gt;" in html
    assert html.count("<table") == html.count("</table>")


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def test_html_makes_no_remote_references(rendered):
    _, html, _ = rendered
    parser = TagCollector()
    parser.feed(html)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "base", "form", "audio", "video", "source"}
    for tag, attrs in parser.tags:
        for name, value in attrs:
            value = (value or "").strip().lower()
            assert not re.match(r"(https?:)?//", value), (tag, name, value)
            assert "url(" not in value and "javascript:" not in value, (tag, name, value)
            assert not name.startswith("on"), (tag, name)
    metas = [dict(attrs) for tag, attrs in parser.tags if tag == "meta"]
    csp = [meta for meta in metas if meta.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1 and "default-src 'none'" in csp[0]["content"]
    style = "".join(parser.styles).lower()
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert "https://tracker.invalid/p.png" in "".join(parser.text)


def test_markdown_neutralises_hostile_text(rendered):
    markdown, _, _ = rendered
    for piece in HOSTILE_PIECES:
        assert piece not in markdown
    rendered_md = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script" not in rendered_md.lower() and "<img" not in rendered_md.lower()
    assert 'href="https://tracker.invalid' not in rendered_md and 'src="https://tracker.invalid' not in rendered_md
    assert "&lt;script&gt;document.title" in rendered_md


def test_markdown_tables_keep_their_shape(rendered):
    markdown, _, _ = rendered
    for block in re.split(r"\n\s*\n", markdown):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if len(rows) < 2:
            continue
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, rows[:3]


def test_escape_inline_and_quote_block():
    assert escape_inline("a|b\nc") == "a\\|b<br>c"
    assert escape_inline("![x](https://e.invalid/p.png)") == "![x\\](https\\://e.invalid/p.png)"
    assert escape_inline("<b>&") == "&lt;b&gt;&amp;"
    assert escape_inline("[a]: https://e.invalid") == "[a\\]: https\\://e.invalid"
    assert quote_block("# heading\n- item\n\nplain") == "> \\# heading\n> \\- item\n>\n> plain"


def test_rendering_imports_no_model_libraries_and_is_fast(run_dir):
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from harness.reports import render_report
        start = time.perf_counter()
        render_report(Path({str(run_dir)!r}))
        elapsed = time.perf_counter() - start
        loaded = sorted(m for m in ("torch", "transformers", "peft", "stages", "evals") if m in sys.modules)
        print(f"{{elapsed:.3f}} {{','.join(loaded) or '-'}}")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    elapsed, loaded = out.stdout.split()
    print(f"re-render took {elapsed}s")
    assert loaded == "-"
    assert float(elapsed) < 10


def test_rerender_is_deterministic_and_leaves_no_temp_files(rendered):
    markdown, html, run_dir = rendered
    render_report(run_dir)
    assert (run_dir / "report.md").read_text(encoding="utf-8") == markdown
    assert (run_dir / "report.html").read_text(encoding="utf-8") == html
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_formats_select_files(run_dir):
    assert [p.name for p in render_report(run_dir, ["md"]) if p.parent == run_dir] == ["report.md"]
    assert not (run_dir / "report.html").exists()
    assert [p.name for p in render_report(run_dir, "html") if p.parent == run_dir] == ["report.html"]
    with pytest.raises(HarnessError, match="md, html"):
        render_report(run_dir, ["pdf"])


def test_run_without_results_is_a_user_error(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(HarnessError, match=r"harness run-all.*harness eval") as err:
        render_report(tmp_path)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(HarnessError, match="run directory not found"):
        render_report(tmp_path / "nope")


def test_corrupt_results_file_names_the_file(run_dir):
    (run_dir / "results" / "domain.json").write_text("{not json")
    with pytest.raises(HarnessError, match=r"domain\.json"):
        render_report(run_dir)


def test_partial_run_renders_missing_pieces_as_dashes(run_dir):
    shutil.rmtree(run_dir / "checkpoints")
    shutil.rmtree(run_dir / "samples" / "domain")
    (run_dir / "run.json").unlink()
    (run_dir / "config.yaml").unlink()
    result = json.loads((run_dir / "results" / "domain.json").read_text())
    del result["metrics"]["bertscore_f1"], result["deltas"]["bertscore_f1"]
    (run_dir / "results" / "domain.json").write_text(json.dumps(result))
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    line = next(line for line in markdown.splitlines() if line.startswith("| BERTScore F1"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    assert cells[2] == "— —"
    assert "No stage manifests" in markdown and "No config.yaml" in markdown
    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == SECTIONS


def test_section_perplexity_is_token_weighted_over_chunks():
    chunks = [
        SampleRecord(id=f"s3w{j}", eval="perplexity", values={"heldout_perplexity": nll},
                     weights={"heldout_perplexity": tokens}, extra={"section": 3})
        for j, (nll, tokens) in enumerate([(300.0, 100), (20.0, 10)])
    ]
    assert section_perplexity(chunks) == pytest.approx(math.exp(320.0 / 110))
    assert section_perplexity([SampleRecord(id="s", eval="perplexity")]) is None


def _section_chunk(section: int, title: str, document: str) -> SampleRecord:
    return SampleRecord(
        id=f"s{section}w0", eval="perplexity", values={"heldout_perplexity": 10.0}, weights={"heldout_perplexity": 5.0},
        extra={"section": section, "title": title, "document": document},
    )


def test_section_titles_name_their_document_when_the_heldout_text_has_several():
    one = {"base": [_section_chunk(0, "Intro", "a.pdf"), _section_chunk(1, "Sleep", "a.pdf")]}
    assert [row.title for row in section_rows(one)] == ["Intro", "Sleep"]
    two = {"base": [_section_chunk(0, "Intro", "a.pdf"), _section_chunk(1, "Intro", "notes.md")]}
    assert [row.title for row in section_rows(two)] == ["a.pdf: Intro", "notes.md: Intro"]


def _similarity(checkpoint_scores: dict[str, list[float]]) -> dict[str, list[SampleRecord]]:
    return {
        name: [SampleRecord(id=f"q{i}", eval="similarity", prompt=f"p{i}", output=f"{name}{i}", values={"rougeL": s})
               for i, s in enumerate(scores)]
        for name, scores in checkpoint_scores.items()
    }


def test_generation_groups_pick_best_and_worst_by_gain_over_base():
    base = [0.2] * 12
    instruct = [0.2 + 0.01 * i for i in range(12)]
    instruct[4] = 0.0
    groups = generation_groups(_similarity({"base": base, "instruct": instruct}), 3, Lineage(), PRESENTED)
    titles = [g.title for g in groups]
    assert titles == ["Seeded sample", "Best 3 by ROUGE-L Δ vs base", "Worst 3 by ROUGE-L Δ vs base"]
    assert [r.item_id for r in groups[1].rows] == ["q11", "q10", "q9"]
    assert [r.item_id for r in groups[2].rows] == ["q4", "q0", "q1"]
    sample_ids = {r.item_id for r in groups[0].rows}
    assert len(sample_ids) == 5 and not sample_ids & {"q11", "q10", "q9", "q4", "q0", "q1"}
    again = generation_groups(_similarity({"base": base, "instruct": instruct}), 3, Lineage(), PRESENTED)
    assert [r.item_id for r in again[0].rows] == [r.item_id for r in groups[0].rows]


@pytest.mark.parametrize(
    "category, values, failure",
    [
        ("harmful", {"refusal_rate_harmful": 0.0}, "complied with a harmful request"),
        ("harmful", {"refusal_rate_harmful": 1.0}, None),
        ("benign", {"over_refusal_rate_benign": 1.0}, "refused a benign request"),
        ("crisis", {"crisis_referral_rate": 0.0}, "no crisis referral"),
        ("crisis", {"unverified_hotlines": 1.0}, None),
    ],
)
def test_failure_of(category, values, failure):
    assert failure_of(SampleRecord(id="x", eval="safety", category=category, values=values)) == failure


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (17.3, 26.9), (-0.07, 0.02), (5.0, 5.0), (0.0, 0.0)])
def test_nice_ticks_cover_the_range(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) >= 2
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1


def test_single_checkpoint_run_says_there_is_nothing_to_compare(run_dir):
    for name in ["domain", "instruct", "instruct-only"]:
        (run_dir / "results" / f"{name}.json").unlink()
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    verdict = section_text(markdown, "Verdict")
    assert "Only base was evaluated" in verdict
    header = next(line for line in section_text(markdown, "Summary").splitlines() if line.startswith("| Metric"))
    assert header == "| Metric | base |"
    assert "### Seeded sample" in markdown and "Best 3" not in markdown


def test_verdict_says_when_every_checkpoint_sits_at_the_worst_safety_value(run_dir):
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    assert "the worst possible value" not in section_text(markdown, "Verdict")
    for path in (run_dir / "results").glob("*.json"):
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored["metrics"]["crisis_referral_rate"].update(value=0.0, ci_low=0.0, ci_high=0.0)
        path.write_text(json.dumps(stored), encoding="utf-8")
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    n = results_json(run_dir)["base"]["metrics"]["crisis_referral_rate"]["n"]
    floor = [line for line in section_text(markdown, "Verdict").splitlines() if "worst possible value" in line]
    assert floor == [f"- ⚠ Every checkpoint scored 0.0% on crisis referral rate ({n} items each), the worst possible value."]
    crisis_row = next(line for line in section_text(markdown, "Summary").splitlines() if line.startswith("| Crisis referral"))
    cells = [c.strip() for c in crisis_row.strip("|").split(" | ")][1:]
    assert not any(cell.startswith("**") for cell in cells), "a tie across every checkpoint highlights nothing"


def test_partial_refusals_are_counted_apart_per_category_and_checkpoint(rendered):
    markdown, html, run_dir = rendered
    safety = section_text(markdown, "Safety")
    table = safety[safety.index("counted apart") : safety.index("### Failures")]
    header = next(line for line in table.splitlines() if line.startswith("| Replies | Category |"))
    checkpoints = [cell.strip() for cell in header.strip("|").split("|")[2:]]
    expected = {}
    for checkpoint in checkpoints:
        records = [json.loads(line) for line in (run_dir / "samples" / checkpoint / "safety.jsonl").read_text().splitlines() if line]
        for category in ("harmful", "crisis", "benign"):
            expected.setdefault(category, []).append(
                str(sum(r["category"] == category and "partial_refusal" in r["flags"] for r in records))
            )
    for category, counts in expected.items():
        assert f"| partial refusals | {category} | " + " | ".join(counts) + " |" in table
    assert expected["benign"] != ["0"] * len(checkpoints), "the fixture must hold a partial refusal for this test to mean anything"
    assert "partial refusals object but still deliver content" in html


def _cut_crisis_replies(run_dir: Path, shares: dict[str, float]) -> None:
    for name, share in shares.items():
        path = run_dir / "results" / f"{name}.json"
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored["metrics"]["crisis_referral_rate"]["capped_share"] = share
        path.write_text(json.dumps(stored), encoding="utf-8")


def test_a_rate_from_cut_replies_is_shown_with_its_share_but_not_stated_as_a_finding(run_dir):
    regression = "lowered crisis referral rate from 85.0% to 35.0%"
    before = section_text(render_report(run_dir, ["md"])[0].read_text(encoding="utf-8"), "Verdict")
    assert regression in before and "crisis referral rate (instruct vs base)" in before
    _cut_crisis_replies(run_dir, {"base": 0.1, "domain": 0.0, "instruct": 0.45, "instruct-only": 0.2})
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    verdict = section_text(markdown, "Verdict")
    assert regression not in verdict and "crisis referral rate (instruct vs base)" not in verdict
    finding = next(line for line in verdict.splitlines() if "No finding on crisis referral rate: replies cut at the token cap (" in line)
    assert all(share in finding for share in ("base 10%", "domain 0%", "instruct 45%", "instruct-only 20%"))
    assert finding.endswith("so the value could still change with more tokens (raise eval.generation.max_new_tokens_by_eval).")
    crisis_row = next(line for line in section_text(markdown, "Safety").splitlines() if line.startswith("| crisis"))
    assert "(n=20, 45% cut at the token cap)" in crisis_row and "(n=20, 10% cut at the token cap)" in crisis_row


def test_a_rate_at_its_worst_from_cut_replies_is_not_called_the_worst(run_dir):
    for path in (run_dir / "results").glob("*.json"):
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored["metrics"]["crisis_referral_rate"].update(value=0.0, ci_low=0.0, ci_high=0.0, capped_share=1.0)
        path.write_text(json.dumps(stored), encoding="utf-8")
    verdict = section_text(render_report(run_dir, ["md"])[0].read_text(encoding="utf-8"), "Verdict")
    assert "the worst possible value" not in verdict and "No finding on crisis referral rate" in verdict


def test_a_rate_with_few_cut_replies_stays_a_finding(run_dir):
    _cut_crisis_replies(run_dir, {"base": 0.2, "domain": 0.2, "instruct": 0.2, "instruct-only": 0.2})
    verdict = section_text(render_report(run_dir, ["md"])[0].read_text(encoding="utf-8"), "Verdict")
    assert "lowered crisis referral rate from 85.0% to 35.0%" in verdict and "No finding" not in verdict


def test_html_plots_show_every_metric_with_its_ci_every_stage_curve_and_the_sections(rendered):
    import html as html_lib
    import re

    from harness.run.results import EvalResult
    from harness.reports.format import direction_arrow, format_ci, format_value

    _, html, run_dir = rendered
    plots = html[html.index('<section id="plots">') : html.index("</section>", html.index('<section id="plots">'))]
    labels = re.findall(r'<svg[^>]*aria-label="([^"]*)"', plots)
    results = {p.stem: EvalResult.load(p) for p in (run_dir / "results").glob("*.json")}
    metrics = {m for r in results.values() for m in r.metrics}
    expected_metric_labels = {html_lib.escape(f"{PRESENTED[m].label} {direction_arrow(next(r.metrics[m].higher_is_better for r in results.values() if m in r.metrics))}".rstrip()) for m in metrics}
    assert expected_metric_labels <= set(labels)
    trained = [p.parent.name for p in (run_dir / "checkpoints").glob("*/manifest.json") if p.parent.name != "base"]
    assert {label for label in labels if label.endswith("stage loss")} == {
        f"{arm}: {'domain' if arm == 'domain' else 'instruct'} stage loss" for arm in trained
    }
    assert "Held-out perplexity per section" in labels
    whiskers = 0
    for name, result in results.items():
        for metric, value in result.metrics.items():
            tooltip = f"{name}: {format_value(PRESENTED[metric], value.value)} {format_ci(PRESENTED[metric], value.ci_low, value.ci_high)} (n={value.n})"
            assert f"<title>{html_lib.escape(tooltip)}</title>" in plots, tooltip
            whiskers += value.ci_low != value.ci_high
    assert plots.count('stroke-width="1.2"') >= whiskers > 0


def test_headline_safety_data_and_manifest_sections_carry_the_saved_facts(rendered):
    from harness.run.results import read_samples
    from harness.reports.markdown import escape_inline
    from harness.reports.safety import failure_of

    markdown, html, run_dir = rendered
    run = json.loads((run_dir / "run.json").read_text())
    headline = markdown[: markdown.index("\n## Verdict")]
    assert run["started"] in headline and run["finished"] in headline and "51m 47s" in headline
    assert ", ".join(run["arms"]) in headline

    safety = section_text(markdown, "Safety")
    failed = [
        (name, record)
        for name in run["arms"]
        for record in read_samples(run_dir / "samples" / name / "safety.jsonl")
        if failure_of(record) is not None
    ]
    assert failed, "the fixture must hold safety failures"
    for name, record in failed:
        assert f"| {name} | {record.id} | {failure_of(record)} | {escape_inline(record.prompt)} | {escape_inline(record.output)} |" in safety
    for name in run["arms"]:
        for record in read_samples(run_dir / "samples" / name / "safety.jsonl"):
            for hotline in record.extra.get("hotlines", []):
                if not hotline.get("verified"):
                    assert f"| {name} | {record.id} | {hotline['text']} |" in safety

    data = section_text(markdown, "Data and leakage")
    counseling = run["data_inspect"]["counseling"]
    for key in ("train_rows", "test_rows", "train_questions", "test_questions"):
        assert f"| {key} | {counseling[key]} |" in data
    assert "**question_overlap** | **0**" in data

    manifest = section_text(markdown, "Run manifest")
    for package, version in run["versions"].items():
        assert f"| {package} | {version} |" in manifest
    for arm in run["stage_wall_times"]:
        stage = json.loads((run_dir / "checkpoints" / arm / "manifest.json").read_text())
        assert f"| {stage['tokens_per_s']:.1f} |" in manifest.split("### Stages")[1].split("###")[0], arm
    assert "### Config" in manifest and "### Seeds" in manifest


# ---- absurd numbers, stray characters, bare links ----


def _set_metric(run_dir: Path, checkpoint: str, metric: str, value: float, ci: tuple[float, float]) -> None:
    path = run_dir / "results" / f"{checkpoint}.json"
    result = json.loads(path.read_text())
    result["metrics"][metric].update(value=value, ci_low=ci[0], ci_high=ci[1])
    path.write_text(json.dumps(result))


@pytest.mark.parametrize(
    "value, ci, shown",
    [
        (1.7e308, (1.7e308, 1.7e308), "1.7e+308"),
        (1e308, (-1e308, 1e308), "1e+308"),
        (-1e308, (-1e308, -1e308), "-1e+308"),
        (math.inf, (math.inf, math.inf), "inf"),
        (math.nan, (math.nan, math.nan), "nan"),
    ],
)
def test_absurd_and_non_finite_metrics_render_as_such_in_bounded_time(run_dir, value, ci, shown):
    _set_metric(run_dir, "base", "heldout_perplexity", value, ci)
    script = f"from harness.reports import render_report; render_report({str(run_dir)!r})"
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True, timeout=120)
    markdown = (run_dir / "report.md").read_text(encoding="utf-8")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    row = next(line for line in markdown.splitlines() if line.startswith("| Held-out perplexity"))
    assert row.split(" | ")[1].strip("*").startswith(shown), row
    assert f"{shown} (off scale)" in html
    assert max(len(token) for token in re.findall(r"[\d.]+", markdown + html)) < 40, "a number printed digit by digit"


def test_an_all_zero_rate_chart_spans_0_to_100_percent(run_dir):
    from harness.reports.plots import metric_bars
    from harness.reports.load import load_run

    for checkpoint in ("base", "domain", "instruct", "instruct-only"):
        _set_metric(run_dir, checkpoint, "over_refusal_rate_benign", 0.0, (0.0, 0.0))
    svg = metric_bars("over_refusal_rate_benign", load_run(run_dir).results)
    labels = re.findall(r">(-?[\d.]+%)<", svg)
    assert labels[0] == "0%" and labels[-1] == "100%" and not any(label.startswith("-") for label in labels), labels
    assert nice_ticks(0.0, 0.0) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_a_format_that_fails_to_render_leaves_the_previous_pair(run_dir, monkeypatch):
    import harness.reports as reports

    render_report(run_dir)
    before = {name: (run_dir / name).read_bytes() for name in ("report.md", "report.html")}
    _set_metric(run_dir, "base", "heldout_perplexity", 99.0, (98.0, 100.0))

    def failing_html(report):
        raise RuntimeError("the HTML template broke")

    monkeypatch.setitem(reports.FORMATS, "html", failing_html)
    with pytest.raises(RuntimeError, match="HTML template broke"):
        render_report(run_dir)
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def _plant_in_safety_replies(run_dir: Path, text: str) -> None:
    """Append `text` to every reply in base's safety log, so it reaches the report's failure table."""
    path = run_dir / "samples" / "base" / "safety.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for record in records:
        record["output"] = f"{record['output']} {text}"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def test_bare_urls_in_model_text_do_not_become_links_on_github(run_dir):
    import cmarkgfm

    _plant_in_safety_replies(run_dir, "Visit https://evil.invalid/a, www.evil.invalid or mail help@evil.invalid now.")
    markdown = render_report(run_dir, ["md"])[0].read_text(encoding="utf-8")
    html = cmarkgfm.github_flavored_markdown_to_html(markdown)
    assert "evil.invalid" in html
    assert not re.search(r"<a [^>]*evil\.invalid", html), re.findall(r"<a [^>]*>", html)
    text = re.sub(r"<[^>]+>", "", html).replace("\u2060", "")
    assert "Visit https://evil.invalid/a, www.evil.invalid or mail help@evil.invalid now." in text


def test_control_and_bidi_characters_are_shown_not_passed_into_the_reports(run_dir):
    _plant_in_safety_replies(run_dir, "bell\x07 escape\x1b[2J reversed\u202eevil\u202c end\x9b")
    markdown, html = (path.read_text(encoding="utf-8") for path in render_report(run_dir)[:2])
    for text in (markdown, html):
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
        assert "bell␇ escape␛[2J reversed‹U+202E›evil‹U+202C› end‹U+009B›" in text


@pytest.mark.parametrize("damage", ["binary config.yaml", "results/x.json is a folder", "samples log is a folder"])
def test_unreadable_run_files_are_one_line_errors_naming_them(run_dir, damage):
    if damage == "binary config.yaml":
        (run_dir / "config.yaml").write_bytes(bytes(range(256)))
        named = run_dir / "config.yaml"
    elif damage == "results/x.json is a folder":
        named = run_dir / "results" / "x.json"
        named.mkdir()
    else:
        named = run_dir / "samples" / "base" / "extra.jsonl"
        named.mkdir()
    with pytest.raises(HarnessError) as raised:
        render_report(run_dir)
    assert str(raised.value).startswith(f"{named}:") and "\n" not in str(raised.value)
