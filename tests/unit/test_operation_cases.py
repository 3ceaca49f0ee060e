"""Tests as data, as pyinfra keeps its own (tests/operations/<op>/*.json): each operation of ours
that takes explicit arguments, given the arguments of a case in
tests/files/operations/<operation>/<case>.json, yields exactly the commands the case lists.
Commands are written as the node would run them; a file upload as `upload <dest> sha1=<12>`, a
script of ours passed whole as `<scripts/NAME>`, a function run on the controller as
`function <name>`. Every operation directory is one of ours, and each has a case."""

import hashlib
import json
import shlex
from pathlib import Path

import pytest
from pyinfra.api.command import FileUploadCommand, FunctionCommand, QuoteString

from pvefail2ban import operations
from pvefail2ban.facts import SCRIPTS

CASES_DIR = Path(__file__).resolve().parents[1] / "files/operations"
CASES = sorted(CASES_DIR.glob("*/*.json"))
SCRIPT_TEXTS = {p.read_text(): f"scripts/{p.name}" for p in SCRIPTS.iterdir() if p.is_file()}


def arguments(name, given):
    """The case's JSON arguments as the operation takes them: file contents as bytes and tuples."""
    args = dict(given)
    if name == "placed_files":
        args["files"] = {p: (text.encode(), mode) for p, (text, mode) in args["files"].items()}
        args["present"] = {p: tuple(v) for p, v in args["present"].items()}
    return args


def render(command):
    if isinstance(command, FileUploadCommand):
        src = command.src
        data = src.getvalue() if hasattr(src, "getvalue") else Path(src).read_bytes()
        return f"upload {command.dest} sha1={hashlib.sha1(data).hexdigest()[:12]}"
    if isinstance(command, FunctionCommand):
        return f"function {command.function.__name__}"
    words = []
    for bit in command.bits:
        if isinstance(bit, QuoteString):
            text = str(bit.obj)
            words.append(f"<{SCRIPT_TEXTS[text]}>" if text in SCRIPT_TEXTS else shlex.quote(text))
        else:
            words.append(str(bit))
    return " ".join(words)


def test_every_case_directory_is_an_operation_of_ours_with_cases():
    names = {p.name for p in CASES_DIR.iterdir()}
    assert names and all(hasattr(getattr(operations, n, None), "_inner") for n in names), names
    assert names == {p.parent.name for p in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_operation_yields_the_case_s_commands(case):
    spec = json.loads(case.read_text())
    operation = getattr(operations, case.parent.name)
    commands = operation._inner(**arguments(case.parent.name, spec["args"]))
    assert [render(c) for c in commands] == spec["commands"]
