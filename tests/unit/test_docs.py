"""The documentation: a README that fits its job (at most MAX_README_LINES lines), the rest in
docs/, every relative link of README.md and docs/*.md pointing at a file that exists (and, with a
`#anchor`, at a heading of that page), and every docs page linked from the README.
Standard library only: no network, no Docker."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^(?:https?:|mailto:)", re.IGNORECASE)


def prose_lines(text):
    """The lines of a markdown text outside fenced code blocks."""
    fenced = None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence and fenced is None:
            fenced = fence.group(1)
        elif fence and fence.group(1) == fenced:
            fenced = None
        elif fenced is None:
            yield line


def slug(heading):
    """GitHub's anchor of a heading: lowercase, stripped, only letters, digits, spaces, hyphens
    and underscores kept, then spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text):
    """Every heading anchor of a page; a repeated one gets GitHub's -1, -2, ... suffix."""
    seen, found = {}, set()
    for line in prose_lines(text):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(f"{base}-{seen[base]}" if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    return found


def links(text):
    """Every markdown link target `[text](target)` of a page, outside code blocks and code spans."""
    return [
        match.group(2)
        for line in prose_lines(text)
        for match in LINK.finditer(CODE_SPAN.sub("code", line))
    ]


def broken_links(page, text=None):
    """What is wrong with the relative links of `page` (its own text, or `text` as if it were its
    text): a target file that does not exist, or an anchor no heading of the target page has."""
    text = page.read_text() if text is None else text
    problems = []
    for target in links(text):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / unquote(path)).resolve() if path else page.resolve()
        if not where.exists():
            problems.append(f"{page.name}: ({target}): no such file {where}")
        elif anchor and where.suffix != ".md":
            problems.append(f"{page.name}: ({target}): an anchor into a file that is not markdown")
        elif anchor:
            headings = anchors(text if where == page.resolve() else where.read_text())
            if anchor not in headings:
                problems.append(f"{page.name}: ({target}): no heading #{anchor} in {where.name}")
    return problems


def test_the_readme_fits_its_job():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move some to docs/"


def test_there_are_docs_pages():
    assert DOCS, "docs/*.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (README.parent / unquote(target.partition("#")[0])).resolve()
        for target in links(README.read_text())
        if not EXTERNAL.match(target) and target.partition("#")[0]
    }
    assert [page.name for page in DOCS if page.resolve() not in linked] == []


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.name)
def test_every_docs_page_has_a_title_and_a_way_back(page):
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# "), lines[0]
    assert "[README](../README.md)" in lines[:5]


def test_slugs_are_githubs():
    assert slug("What is adapted per node, and why") == "what-is-adapted-per-node-and-why"
    assert (
        slug("Day-2 operations, for the whole cluster") == "day-2-operations-for-the-whole-cluster"
    )
    assert (
        slug("Faults and hostile input (`tests/lab/test_03_faults.py`)")
        == "faults-and-hostile-input-testslabtest_03_faultspy"
    )
    assert anchors("# A\n\n## A\n\n```sh\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Its part\n")
    page = tmp_path / "page.md"
    text = "\n".join(
        [
            "# Here",
            "[fine](#here) [fine too](other.md#its-part) [a folder](.) [web](https://example.org/x)",
            "[mail](mailto:root@example.org) `[in code](gone.md)`",
            "```",
            "[in a block](gone.md)",
            "```",
            "[no file](missing.md) [no heading](#there) [no heading there](other.md#nowhere)",
        ]
    )
    page.write_text(text)
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "(missing.md): no such file" in problems[0]
    assert "(#there): no heading #there in page.md" in problems[1]
    assert "(other.md#nowhere): no heading #nowhere in other.md" in problems[2]
    assert broken_links(page, "[fine](other.md)") == []
