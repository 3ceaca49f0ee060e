"""Tests as data: each recorded node (tests/files/facts/<name>.json, what the probe printed on a lab
node, scripts/record-facts.py) has beside it what the deploy must parse from it
(tests/files/facts-expected/<name>.json: the fields that say what kind of node it is, written and
reviewed by hand, kept when the recordings are made again). A recording without one fails."""

import json
from pathlib import Path

import pytest

from pvefail2ban.facts import parse_node

FILES = Path(__file__).resolve().parents[1] / "files"
RECORDINGS = sorted(p for p in (FILES / "facts").glob("*.json") if p.stem != "lab")
EXPECTED = FILES / "facts-expected"


def test_every_recording_has_its_expectations_and_every_expectation_its_recording():
    assert RECORDINGS
    assert sorted(p.stem for p in EXPECTED.glob("*.json")) == sorted(p.stem for p in RECORDINGS)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_the_recorded_node_parses_into_what_it_is(recording):
    facts = parse_node(recording.read_text())
    expected = json.loads((EXPECTED / recording.name).read_text())
    got = {key: facts.get(key) for key in expected if key != "packages"}
    got["packages"] = sorted(facts.get("packages") or {})
    assert got == expected
