"""Node facts for the unit tests: what the deploy's own command (facts.NODE_COMMAND, the probe)
printed on one lab node of each variant, before the first run (<variant>-fresh.json) and once
converged (<variant>.json), recorded by scripts/record-facts.py in tests/files/facts/, and parsed
as the deploy parses a node."""

import json
from pathlib import Path

from pvefail2ban.facts import parse_node

RECORDINGS = Path(__file__).resolve().parents[1] / "files/facts"
VARIANTS = ("pve8", "pve9", "legacy", "pbs", "pmg", "pvepbs", "pdm")


def recorded(variant="pve8", fresh=False):
    """The probe's JSON as the node printed it."""
    return json.loads((RECORDINGS / f"{variant}{'-fresh' if fresh else ''}.json").read_text())


def said(variant="pve8", fresh=False, **changes):
    """The probe's JSON text with top-level `changes`: what a node would print."""
    return json.dumps({**recorded(variant, fresh), **changes})


def node(variant="pve8", fresh=False, **changes):
    """Facts of a recorded node, with `changes` to the parsed values."""
    facts = parse_node(said(variant, fresh))
    facts.update(changes)
    return facts
