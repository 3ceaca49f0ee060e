"""Record what the deploy reads on each kind of node, for the unit tests (tests/files/facts/):
one lab node of every variant, read with the deploy's own command (facts.NODE_COMMAND) before the
first run (<variant>-fresh.json) and after it converged (<variant>.json).

    .venv/bin/python scripts/record-facts.py        (needs the lab: make lab-build first)

Run it again when the probe's output changes (scripts/probe.py); the tests read these files as the
deploy reads a node (facts.parse_node), so a recording that no longer parses fails them.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import config  # noqa: E402
from lab.lab import Lab  # noqa: E402
from pvefail2ban.facts import NODE_COMMAND  # noqa: E402
from pvefail2ban.node import controller_addresses  # noqa: E402

OUT = ROOT / "tests/files/facts"


def record(lab, suffix):
    for node in lab.nodes():
        answer = subprocess.run(
            lab.ssh_command(node, NODE_COMMAND.get_raw_value()),
            capture_output=True,
            text=True,
            timeout=120,
        )
        doc = json.loads(answer.stdout)
        path = OUT / f"{node.variant}{suffix}.json"
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"{node.name} ({node.variant}): {path.relative_to(ROOT)}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    lab = Lab()
    # every kind of node the deploy protects: not the monitoring host, nor the pve8 nodes that only
    # carry packages in apt's cache (the upgrade's, the reverse proxies')
    lab.up(variants=[v for v in config.VARIANTS if v not in ("mon", "upgrade", "proxy")])
    try:
        # the run's own inventory and this controller's addresses: with them, the recordings
        # give the same plan on any machine (tests/unit/test_operations.py)
        run = {
            "nodes": {n.name: {"variant": n.variant, "ssh_hostname": n.ip} for n in lab.nodes()},
            "controller": controller_addresses(),
        }
        (OUT / "lab.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
        record(lab, "-fresh")
        run = lab.pyinfra()
        if run.returncode != 0:
            print(run.text[-3000:], file=sys.stderr)
            return 1
        record(lab, "")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
