"""Parse what fail2ban-client says (via verify.sh) and judge it. Pure functions, unit-tested."""
import re

FIELDS = {
    "Currently failed": "failed", "Total failed": "total_failed",
    "Currently banned": "banned", "Total banned": "total_banned",
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


def parse_verify(text):
    """verify.sh output -> {ping, version, jails: [names], status: {jail: parsed}, firewall, config}."""
    out = {"ping": False, "version": "", "jails": [], "status": {}, "firewall": None,
           "config_errors": [], "service": []}
    current, block = None, []

    def flush():
        if current:
            out["status"][current] = parse_jail_status("\n".join(block))

    for line in text.splitlines():
        if line.startswith("jail="):
            flush()
            current, block = line[5:].strip(), []
        elif line.startswith(("ping=", "version=", "jails=", "firewall=", "config", "status: ")):
            flush()
            current = None
            key, _, value = line.partition("=") if "=" in line.split(":")[0] else line.partition(": ")
            key = key.strip()
            if key == "ping":
                out["ping"] = value == "yes"
            elif key == "version":
                out["version"] = value.strip()
            elif key == "jails":
                out["jails"] = [j.strip() for j in value.split(",") if j.strip()]
            elif key == "firewall":
                out["firewall"] = value.strip()
            elif key == "config":
                out["config_errors"].append(value.strip())
            elif key == "status":
                out["service"].append(value.rstrip())
        elif current:
            block.append(line)
    flush()
    return out


def problems(result, expected_jails, tool):
    """Why this node's fail2ban does not protect it, as readable sentences (empty = all good)."""
    if not result["ping"]:
        detail = "; ".join(l.strip() for l in result["service"] if l.strip())
        return [f"fail2ban does not answer `fail2ban-client ping`: {detail}".rstrip(": ")]
    found = []
    for jail in expected_jails:
        status = result["status"].get(jail, {})
        if jail not in result["jails"]:
            found.append(f"jail {jail} is not running (fail2ban-client status lists: "
                         f"{', '.join(result['jails']) or 'no jails'})")
        elif not status.get("journal_matches") and not status.get("file_list"):
            found.append(f"jail {jail} reads no live source (no journal match, no existing log file)")
    if result["firewall"] != "ok":
        found.append(f"the ban action's tool `{tool}` does not work, bans would not be enforced: "
                     f"{result['firewall'] or 'not found'}")
    if result["config_errors"]:
        found.append("the configuration on disk fails `fail2ban-client -t` (the next restart would fail): "
                     + " | ".join(result["config_errors"]))
    return found


def summary(result, expected_jails):
    parts = [f"fail2ban {result['version'] or '?'}"]
    for jail in expected_jails:
        s = result["status"].get(jail)
        if not s:
            parts.append(f"{jail}: missing")
            continue
        source = "journal" if s.get("journal_matches") else ",".join(s.get("file_list") or []) or "none"
        parts.append(f"{jail} [{source}] failed {s.get('failed', 0)}/{s.get('total_failed', 0)} "
                     f"banned {s.get('banned', 0)}/{s.get('total_banned', 0)}"
                     + (f" ({' '.join(s['banned_ips'])})" if s.get("banned_ips") else ""))
    return "; ".join(parts)
