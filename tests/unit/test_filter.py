"""The proxmox filter against its annotated sample log, with the real fail2ban-regex."""

import ast
import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "pvefail2ban/files/etc/fail2ban/filter.d/proxmox.conf"
SAMPLES = ROOT / "tests/files/logs/proxmox"


@pytest.fixture(scope="session")
def fail2ban_regex():
    tool = subprocess.run(
        [str(ROOT / "scripts/ensure-fail2ban-regex.sh")], capture_output=True, text=True
    )
    assert tool.returncode == 0, f"cannot get fail2ban-regex: {tool.stderr}"
    path = tool.stdout.strip()

    def run(*args):
        out = subprocess.run([path, *map(str, args)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run


def annotations():
    """[(epoch, expected host or None)] for each annotated line of the sample log."""
    found = []
    for line in SAMPLES.read_text().splitlines():
        if line.startswith("# failJSON:"):
            note = json.loads(line.split(":", 1)[1])
            epoch = datetime.fromisoformat(note["time"]).replace(tzinfo=timezone.utc).timestamp()
            found.append((int(epoch), note.get("host") if note["match"] else None))
    return found


def matches(output):
    """fail2ban-regex -o row lines -> [(epoch, address)]."""
    rows = []
    for line in output.splitlines():
        if line.startswith("["):
            ip, epoch, _ = ast.literal_eval(line.rstrip(",").replace("\t", " "))
            rows.append((int(float(epoch)), ip))
    return rows


def test_sample_log_is_annotated_throughout():
    notes = annotations()
    assert len(notes) >= 18
    assert (
        sum(1 for _, host in notes if host) >= 11 and sum(1 for _, host in notes if not host) >= 6
    )


def test_filter_matches_exactly_the_annotated_lines_and_addresses(fail2ban_regex):
    expected = [(epoch, host) for epoch, host in annotations() if host]
    assert matches(fail2ban_regex("-o", "row", SAMPLES, FILTER)) == expected


def test_filter_counts_each_attempt_once(fail2ban_regex):
    out = fail2ban_regex(SAMPLES, FILTER)
    total = re.search(r"^Lines: (\d+) lines, 0 ignored, (\d+) matched", out, re.M)
    assert total and int(total.group(2)) == sum(1 for _, host in annotations() if host)


def test_hostile_user_names_never_yield_the_injected_address(fail2ban_regex):
    found = {ip for _, ip in matches(fail2ban_regex("-o", "row", SAMPLES, FILTER))}
    assert not found & {
        "192.0.2.66",
        "192.0.2.67",
        "192.0.2.68",
        "192.0.2.69",
        "192.0.2.70",
        "192.0.2.71",
    }


def test_guide_filter_would_ban_the_injected_address(fail2ban_regex, tmp_path):
    """Why the guide's filter is replaced: its greedy `.*` lets a user name choose the address."""
    guide = tmp_path / "guide.conf"
    guide.write_text(
        "[Definition]\nfailregex = pvedaemon\\[.*authentication (verification )?failure; "
        "rhost=<HOST> user=.* msg=.*\nignoreregex =\n"
    )
    found = {ip for _, ip in matches(fail2ban_regex("-o", "row", SAMPLES, guide))}
    assert "192.0.2.68" in found or "192.0.2.70" in found
