"""The documentation: a README that fits its job (at most MAX_README_LINES lines), the rest in
docs/, every relative link of README.md and docs/*.md pointing at a file that exists (and, with a
`#anchor`, at a heading of that page), and every docs page linked from the README.
Standard library only: no network, no Docker."""

import ast
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


# ---- every `module.name` a docstring, a comment or a docs page names exists ----------------------
SOURCES = sorted(
    p
    for pattern in ("pvefail2ban/**/*.py", "lab/*.py", "bench/*.py", "scripts/*.py", "*.py")
    for p in ROOT.glob(pattern)
)
REFERENCE = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)(?![\w/(-]|\.\w)")
# a second word that makes a file name, not a reference (`deploy.py`, `jail.local`)
SUFFIXES = set(
    "py md conf local json log sh yml yaml service d txt fw pem key pub gz toml cfg ini j2 sqlite3 "
    "timer socket target path Debian rs".split()
)
# first words that are not ours: other projects' modules and options, and prose (`e.g.`, `a.b`)
NOT_OURS = set(
    "a e i x fs host ctx_host fail2ban protocol shlex shutil changelog pvelab os json re user".split()
)


def defined_names(path):
    """Top-level names of a Python file (functions, classes, assignments, imports)."""
    names = set()
    for statement in ast.parse(path.read_text()).body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            for target in statement.targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in statement.names}
    return names


def modules(sources=SOURCES):
    """{stem: set of names it defines}: each Python file by its stem, each package by its folder
    (its submodules and what its __init__ defines); files of the same stem pool their names."""
    found = {}
    for path in sources:
        if path.name == "__init__.py":
            package = found.setdefault(path.parent.name, set())
            package |= defined_names(path) | {p.stem for p in path.parent.glob("*.py")}
            package |= {p.name for p in path.parent.iterdir() if (p / "__init__.py").exists()}
        else:
            found.setdefault(path.stem, set()).update(defined_names(path))
    return found


def texts(sources=SOURCES, pages=PAGES):
    """(where, text) of every docs page's prose and every docstring and comment of our code."""
    for page in pages:
        yield page.relative_to(ROOT), "\n".join(prose_lines(page.read_text()))
    for path in sources:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    yield path.relative_to(ROOT), doc
        comments = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
        yield path.relative_to(ROOT), "\n".join(comments)


def stale_references(found=None, texts=texts):
    """`module.name` references whose module is not ours any more or does not define the name."""
    found = modules() if found is None else found
    problems = []
    for where, text in texts():
        for match in REFERENCE.finditer(text):
            module, name = match.groups()
            if name in SUFFIXES or module in NOT_OURS:
                continue
            if module not in found:
                problems.append(f"{where}: {module}.{name}: no module {module}")
            elif name not in found[module]:
                problems.append(f"{where}: {module}.{name}: {module} has no {name}")
    return sorted(set(problems))


def test_every_module_name_the_docs_and_docstrings_name_exists():
    assert stale_references() == []


def test_the_reference_check_finds_stale_names(tmp_path):
    (tmp_path / "mod.py").write_text(
        '"""See mod.here, mod.gone and old.thing; mod.py is a file."""\nhere = 1\n'
    )
    found = modules([tmp_path / "mod.py"])
    problems = stale_references(found, lambda: [("t", (tmp_path / "mod.py").read_text())])
    assert problems == ["t: mod.gone: mod has no gone", "t: old.thing: no module old"]


# ---- the jail files the docs name are the product table's ---------------------------------------
JAIL_FILE = re.compile(r"\b(\d\d_[a-z-]+)\.local\b")


def jail_files():
    """The stems (`02_proxmox`) of every jail file the deploy writes, from the tables."""
    from pvefail2ban.facts import ACCESS_LOGS
    from pvefail2ban.plan import RECIDIVE_JAIL, SSHD_JAIL
    from pvefail2ban.products import PRODUCTS
    from pvefail2ban.proxies import PROXIES

    paths = [SSHD_JAIL, RECIDIVE_JAIL, *(t.jail_file for t in (*PRODUCTS, *PROXIES, *ACCESS_LOGS))]
    return {Path(path).name.removesuffix(".local") for path in paths}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_jail_file_the_docs_name_is_one_the_deploy_writes(page):
    named = set(JAIL_FILE.findall(page.read_text()))
    assert named - jail_files() == set()


def test_the_troubleshooting_list_names_every_jail_file():
    text = (ROOT / "docs/how-it-works.md").read_text()
    listed = text.split("fail2ban will not start", 1)[1].split("\n- ", 1)[0]
    assert jail_files() - set(JAIL_FILE.findall(listed)) == set()
