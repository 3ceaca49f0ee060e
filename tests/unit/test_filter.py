"""Our filters (proxmox, pbs, pmg, pdm, and the reverse proxies') against their annotated sample logs, with the real fail2ban-regex."""

import ast
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pvefail2ban.scripts.nodelib import canonical_address

ROOT = Path(__file__).resolve().parents[2]
FILTERS = ROOT / "pvefail2ban/files/etc/fail2ban/filter.d"
SAMPLE_LOGS = ROOT / "tests/files/logs"
FILTER = FILTERS / "proxmox.conf"
SAMPLES = SAMPLE_LOGS / "proxmox"
# Every filter of filter.d is tested from its sample log of the same name (as fail2ban's own
# samplestestcase.py does): a filter without one fails. A file other filters include (`before =`)
# is tested through theirs. Each sample line is annotated (`# failJSON:` before it); an address a
# sample log names that no annotation expects is one a hostile line injected: never taken.
INCLUDE = re.compile(r"^(?:before|after)\s*=\s*(\S+)\.conf\s*$", re.M)


def included(filters=FILTERS):
    """Names of the filter files that other filters include."""
    return {name for path in filters.glob("*.conf") for name in INCLUDE.findall(path.read_text())}


CASES = sorted(p.stem for p in FILTERS.glob("*.conf") if p.stem not in included())
ADDRESS = re.compile(  # IPv4 (a port may follow), IPv6 (written whole)
    r"(?<![\w.:])(?:(?:::ffff:)?\d{1,3}(?:\.\d{1,3}){3}(?![\w.])|[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}(?![\w.:]))"
)


def injected(samples):
    """The addresses `samples` names that no annotation expects: a hostile line's."""
    expected = {host for _, host in annotations(samples) if host}
    named = set()
    for line in samples.read_text().splitlines():
        if line.startswith("#"):
            continue
        for text in ADDRESS.findall(line):
            try:
                named.add(
                    canonical_address(text)
                )  # ::ffff:a.b.c.d is a.b.c.d, as fail2ban takes it
            except ValueError:
                pass
    return named - expected


def test_every_filter_has_its_sample_log_and_every_sample_log_its_filter():
    assert CASES and all((SAMPLE_LOGS / name).is_file() for name in CASES), CASES
    assert sorted(p.name for p in SAMPLE_LOGS.iterdir()) == CASES
    assert included() <= {p.stem for p in FILTERS.glob("*.conf")}  # what is included exists


def annotations(samples=SAMPLES):
    """[(epoch, expected host or None)] for each annotated line of the sample log."""
    found = []
    for line in samples.read_text().splitlines():
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


@pytest.mark.parametrize("name", CASES)
def test_sample_log_is_annotated_throughout(name):
    """Each line an annotation, lines that match and lines that do not, and a hostile one."""
    samples = SAMPLE_LOGS / name
    lines = [line for line in samples.read_text().splitlines() if line.strip()]
    notes = annotations(samples)
    assert len(notes) == sum(1 for line in lines if not line.startswith("#"))
    assert any(host for _, host in notes) and any(not host for _, host in notes)
    assert injected(samples), "no hostile line names an address of its own"


@pytest.mark.parametrize("name", CASES)
def test_filter_matches_exactly_the_annotated_lines_and_addresses(fail2ban_regex, name):
    samples = SAMPLE_LOGS / name
    expected = [(epoch, host) for epoch, host in annotations(samples) if host]
    assert matches(fail2ban_regex("-o", "row", samples, FILTERS / f"{name}.conf")) == expected


@pytest.mark.parametrize("name", CASES)
def test_filter_counts_each_attempt_once(fail2ban_regex, name):
    samples = SAMPLE_LOGS / name
    out = fail2ban_regex(samples, FILTERS / f"{name}.conf")
    total = re.search(r"^Lines: (\d+) lines, 0 ignored, (\d+) matched", out, re.M)
    assert total and int(total.group(2)) == sum(1 for _, host in annotations(samples) if host)


@pytest.mark.parametrize("name", CASES)
def test_hostile_lines_never_yield_the_injected_address(fail2ban_regex, name):
    samples = SAMPLE_LOGS / name
    found = {
        ip for _, ip in matches(fail2ban_regex("-o", "row", samples, FILTERS / f"{name}.conf"))
    }
    assert not found & injected(samples)


def test_guide_filter_would_ban_the_injected_address(fail2ban_regex, tmp_path):
    """Why the guide's filter is replaced: its greedy `.*` lets a user name choose the address."""
    guide = tmp_path / "guide.conf"
    guide.write_text(
        "[Definition]\nfailregex = pvedaemon\\[.*authentication (verification )?failure; "
        "rhost=<HOST> user=.* msg=.*\nignoreregex =\n"
    )
    found = {ip for _, ip in matches(fail2ban_regex("-o", "row", SAMPLES, guide))}
    assert "192.0.2.68" in found or "192.0.2.70" in found


@pytest.mark.parametrize("name", ["proxmox", "pbs", "pmg", "pdm"])
def test_the_journal_match_is_one_line_of_alternatives_the_unit_or_the_daemons_name(name):
    """journald can lose the unit of a line whose process exited at once (systemd issue 2913): each
    filter also matches its daemons' names, as alternatives (`+`) on one line (fail2ban-regex
    reads only the last line of a journalmatch written over several)."""
    text = (FILTERS / f"{name}.conf").read_text()
    (value,) = re.findall(r"^journalmatch = (.*)$", text, re.M)
    following = text.split("journalmatch = ", 1)[1].splitlines()[1:2]
    assert not following or not following[0].startswith(" ")
    alternatives = [a.strip() for a in value.split(" + ")]
    assert any(a.startswith("_SYSTEMD_UNIT=") for a in alternatives)
    # by name: root's lines only (a local user can name a line, not choose its _UID)
    named = [a for a in alternatives if not a.startswith("_SYSTEMD_UNIT=")]
    assert any(a.startswith("SYSLOG_IDENTIFIER=") for a in named)
    assert all(a.split() == [a.split()[0], "_UID=0"] for a in named), named
    assert all(" " not in a for a in alternatives if a not in named)


def test_the_access_filter_s_logins_mode_counts_the_password_logins_alone(fail2ban_regex):
    """mode=logins (a node behind fail2ban_trusted_proxies: its proxmox jail reads pveproxy's
    log): the sample's failed logins, JSON and web UI, paths with %xx too, none of its tokens'."""
    samples = SAMPLE_LOGS / "proxmox-access"
    found = matches(
        fail2ban_regex("-o", "row", samples, f"{FILTERS / 'proxmox-access.conf'}[mode=logins]")
    )
    assert [ip for _, ip in found] == ["192.0.2.43"] * 7  # %xx paths, other formats too


def test_verify_finds_the_failure_lines_the_access_filter_counts():
    """What verify's check takes for failures in pveproxy's log (products.ACCESS_*) is what each
    mode of the filter counts, line for line."""
    from pvefail2ban.products import ACCESS_FAILURE, ACCESS_LOGIN_FAILURE

    samples = (SAMPLE_LOGS / "proxmox-access").read_text().splitlines()
    lines = [line for line in samples if line and not line.startswith("#")]
    notes = annotations(SAMPLE_LOGS / "proxmox-access")
    assert [bool(re.search(ACCESS_FAILURE, line)) for line in lines] == [
        bool(host) for _, host in notes
    ]
    logins = [bool(re.search(ACCESS_LOGIN_FAILURE, line)) for line in lines]
    assert sum(logins) == 7 and not any(
        a and b for a, b in zip(logins, [bool(h) for _, h in notes], strict=True)
    )
