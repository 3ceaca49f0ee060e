"""Parse what fail2ban-client says (via verify.py) and judge it. Pure functions, unit-tested."""

import re

FIELDS = {
    "Currently failed": "failed",
    "Total failed": "total_failed",
    "Currently banned": "banned",
    "Total banned": "total_banned",
}


def parse_jail_status(text):
    """`fail2ban-client status <jail>` -> {failed, total_failed, banned, total_banned, banned_ips,
    journal_matches, file_list}."""
    jail = {"banned_ips": [], "journal_matches": None, "file_list": None}
    for line in text.splitlines():
        label, sep, value = re.sub(r"^[\s|`-]+", "", line).partition(":")
        if not sep:
            continue
        label, value = label.strip(), value.strip()
        if label in FIELDS and value.isdigit():
            jail[FIELDS[label]] = int(value)
        elif label == "Banned IP list":
            jail["banned_ips"] = value.split()
        elif label == "Journal matches":
            jail["journal_matches"] = value
        elif label == "File list":
            jail["file_list"] = value.split()
    return jail


# what each daemon of ours is for, as a problem names it when it does not run
DAEMON_ROLES = {
    "pve-fail2ban-share": "this node's bans do not reach its peers (cluster-wide bans)",
    "pve-fail2ban-events": "this node's metrics and ban notifications stop",
}


def parse_verify(text):
    """verify.py output -> {ping, version, jails: [names], status: {jail: parsed}, firewall,
    config_errors, service, rules, action_errors}. The middle part is `fail2ban-client -i`: answers after "fail2ban> "."""
    out = {
        "ping": False,
        "version": "",
        "jails": [],
        "status": {},
        "firewall": None,
        "config_errors": [],
        "config_tested": None,  # "now", or "unchanged since <time it passed>"
        "service": [],
        "rules": {},  # {our jail: its firewall rules are in place}
        "empty_sources": [],  # our jails whose source holds no line at all
        "seen": {},  # {our jail: (failure lines in its source's last lines, of those its filter finds)}
        "action_errors": {},  # {our jail: fail2ban's error line about its action since its start}
        "daemons": {},  # {our daemon that must run: its systemctl is-active state}
        "tool": None,  # the ban action's tool verify.py read with (`read` mode)
        "unchecked": [],  # our jails whose failure lines were not checked yet (`read` mode)
    }
    for line in text.splitlines():
        if line.startswith("ping="):
            out["ping"] = line[5:].strip() == "yes"
        elif line.startswith("daemon ") and "=" in line:
            name, _, value = line[7:].partition("=")
            out["daemons"][name.strip()] = value.strip()
        elif line.startswith("firewall="):
            out["firewall"] = line[9:].strip()
        elif line.startswith("rules ") and "=" in line:
            jail, _, value = line[6:].partition("=")
            out["rules"][jail.strip()] = value.strip() == "ok"
        elif line.startswith("source ") and line.endswith("=empty"):
            out["empty_sources"].append(line[7:-6])
        elif line.startswith("seen ") and len(line.split()) == 4:
            _, jail, lines, found = line.split()
            out["seen"][jail] = (int(lines), int(found))
        elif line.startswith("actionerror "):
            jail, _, error = line[12:].partition(" ")
            out["action_errors"][jail] = error.strip()
        elif line.startswith("tool="):
            out["tool"] = line[5:].strip()
        elif line.startswith("unchecked "):
            out["unchecked"].append(line[10:].strip())
        elif line.startswith("config=tested"):
            out["config_tested"] = "now"
        elif line.startswith("config=unchanged "):
            out["config_tested"] = f"unchanged since {line.split()[1]}"
        elif line.startswith("config: "):
            out["config_errors"].append(line[8:].strip())
        elif line.startswith("status: "):
            out["service"].append(line[8:].rstrip())
        elif line.startswith("Fail2Ban v") and not out["version"]:
            out["version"] = line.split()[1].lstrip("v")
    for answer in text.split("fail2ban> ")[1:]:
        first, _, rest = answer.partition("\n")
        if first.strip() == "Status":
            match = re.search(r"Jail list:\s*(.*)", rest)
            out["jails"] = (
                [j.strip() for j in match.group(1).split(",") if j.strip()] if match else []
            )
        elif first.startswith("Status for the jail: "):
            out["status"][first.split(":", 1)[1].strip()] = parse_jail_status(rest)
    return out


def complete(result, tool, daemons):
    """True when `result` (of `verify.py read`, with the facts) holds all a check needs: read with
    `tool`, the configuration tested as it is now, every failure line checked, each of `daemons`
    read."""
    return (
        result["tool"] == tool
        and result["config_tested"] is not None
        and not result["unchecked"]
        and set(daemons) <= set(result["daemons"])
    )


def problems(result, expected_jails, off_jails, tool):
    """Why this node's fail2ban does not protect it as the settings say, as readable sentences
    (empty = all good). `off_jails`: jails the settings switched off, which must not run."""
    if not result["ping"]:
        detail = "; ".join(line.strip() for line in result["service"] if line.strip())
        return [f"fail2ban does not answer `fail2ban-client ping`: {detail}".rstrip(": ")]
    found = []
    for jail in expected_jails:
        status = result["status"].get(jail, {})
        if jail not in result["jails"]:
            found.append(
                f"jail {jail} is not running (fail2ban-client status lists: "
                f"{', '.join(result['jails']) or 'no jails'})"
            )
        elif not status.get("journal_matches") and not status.get("file_list"):
            found.append(
                f"jail {jail} reads no live source (no journal match, no existing log file)"
            )
        elif not result["rules"].get(jail):
            error = result["action_errors"].get(jail) or f"no rule for it in the {tool} ruleset"
            found.append(
                f"jail {jail} runs but its firewall rules are not in place, so its bans would "
                f"not be enforced: {error}"
            )
    for jail, (lines, matched) in sorted(result["seen"].items()):
        if jail in expected_jails and lines and not matched:
            found.append(
                f"jail {jail} is blind: its source holds {lines} failure line(s) of its daemon in its last "
                "lines, and its filter finds none of them (fail2ban-regex); a filter or journal match of "
                "the node's own (a .local file?) overrides the deploy's"
            )
    found += [
        f"jail {jail} runs although the settings switch it off"
        for jail in off_jails
        if jail in result["jails"]
    ]
    if result["firewall"] != "ok":
        found.append(
            f"the ban action's tool `{tool}` does not work, bans would not be enforced: "
            f"{result['firewall'] or 'not found'}"
        )
    for daemon, state in sorted(result["daemons"].items()):
        if state != "active":
            found.append(
                f"{daemon}.service is {state}, so {DAEMON_ROLES.get(daemon, 'it does nothing')} "
                f"(journalctl -u {daemon} says why)"
            )
    if result["config_errors"]:
        found.append(
            "the configuration on disk fails `fail2ban-client -t` (the next restart would fail): "
            + " | ".join(result["config_errors"])
        )
    return found


def summary(result, our_jails, daemons=None):
    """One line: fail2ban's version, then every jail that runs (ours first), its source and counts;
    a jail that is not ours is marked so; then what each daemon of ours that runs does
    (`daemons`: {service: what it does})."""
    parts = [f"fail2ban {result['version'] or '?'}"]
    others = [j for j in result["jails"] if j not in our_jails]
    for jail in [*our_jails, *others]:
        s = result["status"].get(jail)
        if not s:
            parts.append(f"{jail}: missing")
            continue
        if jail in others:
            jail += " (not ours)"
        source = (
            "journal" if s.get("journal_matches") else ",".join(s.get("file_list") or []) or "none"
        )
        parts.append(
            f"{jail} [{source}] failed {s.get('failed', 0)}/{s.get('total_failed', 0)} "
            f"banned {s.get('banned', 0)}/{s.get('total_banned', 0)}"
            + (f" ({' '.join(s['banned_ips'])})" if s.get("banned_ips") else "")
        )
    parts += [
        what
        for daemon, what in (daemons or {}).items()
        if result["daemons"].get(daemon) == "active" and what
    ]
    if result.get("config_tested"):
        parts.append(f"config test passed ({result['config_tested']})")
    return "; ".join(parts)
