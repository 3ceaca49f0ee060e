"""The layers the code keeps, read from its imports (standard library only): what parses a node's
answers knows no feature, plan or task; the tables know nothing above them; the node scripts
import nothing of the controller; day-2 never imports the deploy's tasks."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pvefail2ban"
PARSING = ["facts.py", "canonical.py", "jailstatus.py"]
TABLES = ["products.py", "proxies.py", "layout.py", "defaults.py"]
FEATURES = ["share", "events", "alerting"]
ABOVE_PARSING = [*FEATURES, "plan", "settings", "render", "node", "deploy", "tasks", "day2"]
# (files, module names they must never import, why)
NEVER = [
    (PARSING, ABOVE_PARSING, "parsing knows no feature, plan or task"),
    (TABLES, [*ABOVE_PARSING, "facts"], "the tables are below everything that reads them"),
    (["day2/"], ["tasks", "deploy"], "day-2 uses the public model, not the deploy's tasks"),
]


def imported(path, root=PACKAGE):
    """The pvefail2ban modules `path` imports, as names relative to the package `root` (`share`,
    `tasks.share`, `scripts.nodelib`)."""
    package = path.relative_to(root).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)])
            module = [*base, *(node.module.split(".") if node.module else [])]
            if node.module:
                names.add(".".join(module))
            names |= {".".join([*module, alias.name]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pvefail2ban."):
            names.add(node.module.removeprefix("pvefail2ban."))
    return names


def broken(spec, forbidden, root=PACKAGE):
    """ "<file> imports <module>" for each file of `spec` (file names, or "folder/") that imports
    a module of `forbidden`."""
    paths = [p for s in spec for p in (root.glob(f"{s}*.py") if s.endswith("/") else [root / s])]
    return [
        f"{path.relative_to(root)} imports {name}"
        for path in sorted(paths)
        for name in sorted(imported(path, root))
        if name.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("spec,forbidden,why", NEVER, ids=[why for _, _, why in NEVER])
def test_layers(spec, forbidden, why):
    assert broken(spec, forbidden) == [], why


def test_node_scripts_import_nothing_of_the_controller():
    for path in (PACKAGE / "scripts").glob("*.py"):
        assert [n for n in imported(path) if not n.startswith("scripts")] == [], path.name


def test_the_check_sees_a_broken_layer(tmp_path):
    (tmp_path / "facts.py").write_text(
        "from .share import KEY\nfrom .scripts.nodelib import NAME\n"
    )
    (tmp_path / "day2").mkdir()
    (tmp_path / "day2" / "ops.py").write_text(
        "from ..tasks.share import share\nfrom . import model\n"
    )
    assert imported(tmp_path / "facts.py", tmp_path) == {
        "share", "share.KEY", "scripts.nodelib", "scripts.nodelib.NAME"
    }  # fmt: skip
    assert broken(["facts.py"], ["share"], tmp_path) == [
        "facts.py imports share", "facts.py imports share.KEY"
    ]  # fmt: skip
    assert broken(["day2/"], ["tasks"], tmp_path) == [
        "day2/ops.py imports tasks.share", "day2/ops.py imports tasks.share.share"
    ]  # fmt: skip
