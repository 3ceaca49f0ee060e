"""Read the check's answer (scripts/probe.py) and judge it. Pure functions, unit-tested."""

from .canonical import printable, shown

# what each daemon of ours is for, as a problem names it when it does not run
DAEMON_ROLES = {
    "pve-fail2ban-share": "this node's bans do not reach its peers (cluster-wide bans)",
    "pve-fail2ban-events": "this node's metrics and ban notifications stop",
}


def check_result(doc):
    """The check's JSON (scripts/probe.py `check`, or the check read with the facts) -> {ping,
    version, jails: [names], status: {jail: counts, banned_ips, journal_matches, file_list},
    firewall, config_errors, config_tested, service, rules, empty_sources, seen, action_errors,
    daemons, tool, unchecked}, every text made printable (it is shown to the admin). ValueError
    when it is not the probe's answer."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tool"), str):
        raise ValueError(f"not the check's answer: {shown(doc, 200)}")
    out = {
        "ping": doc.get("ping") is True,
        "version": printable(doc.get("version") or "", 40),
        "jails": [printable(j, 64) for j in _list(doc.get("names"))],
        "status": {},
        "firewall": printable(doc["firewall"], 300) if doc.get("firewall") is not None else None,
        "config_errors": [],
        "config_tested": None,  # "now", or "unchanged since <time it passed>"
        "service": [printable(line, 300) for line in _list(doc.get("service"))],
        "rules": {printable(j, 64): v is True for j, v in _dict(doc.get("rules")).items()},
        "empty_sources": [],  # our jails whose source holds no line at all
        "seen": {},  # {our jail: (failure lines in its source's last lines, of those its filter finds, of those from loopback)}
        "action_errors": {printable(j, 64): printable(e, 500) for j, e in _dict(doc.get("action_errors")).items()},
        "daemons": {printable(d, 64): printable(v, 40) for d, v in _dict(doc.get("daemons")).items()},
        "tool": printable(doc["tool"], 20),
        "unchecked": [],  # our jails whose failure lines were not checked yet (read with the facts)
    }  # fmt: skip
    for name, jail in _dict(doc.get("jails")).items():
        jail = _dict(jail)
        out["status"][printable(name, 64)] = {
            **{k: v for k in COUNTS if isinstance(v := jail.get(k), int)},
            "banned_ips": [printable(ip, 64) for ip in _list(jail.get("banned_ips"))],
            "journal_matches": printable(jail["journal_matches"], 500) if jail.get("journal_matches") else None,
            "file_list": [printable(f, 300) for f in _list(jail.get("file_list"))] or None,
        }  # fmt: skip
    for jail, counts in _dict(doc.get("seen")).items():
        if counts is None:
            out["empty_sources"].append(printable(jail, 64))
        elif counts == "unchecked":
            out["unchecked"].append(printable(jail, 64))
        elif (
            isinstance(counts, list)
            and len(counts) in (2, 3)
            and all(type(c) is int for c in counts)
        ):
            if not counts[0]:
                continue  # no failure line in its source
            counts = [*counts, 0][:3]  # an earlier probe's record: no loopback count
            out["seen"][printable(jail, 64)] = tuple(int(c) for c in counts)
    config = _dict(doc.get("config"))
    if config.get("state") == "tested":
        out["config_tested"] = "now"
    elif config.get("state") == "unchanged":
        out["config_tested"] = f"unchanged since {printable(config.get('when') or '?', 40)}"
    elif config.get("state") == "broken":
        out["config_errors"] = [printable(e, 500) for e in _list(config.get("errors"))] or ["?"]
    return out


COUNTS = ("failed", "total_failed", "banned", "total_banned")


def _list(value):
    return value if isinstance(value, list) else []


def _dict(value):
    return value if isinstance(value, dict) else {}


def complete(result, tool, daemons):
    """True when `result` (the check read with the facts, scripts/probe.py `facts`) holds all a check needs: read with
    `tool`, the configuration tested as it is now, every failure line checked, each of `daemons`
    read."""
    return (
        result["tool"] == tool
        and result["config_tested"] is not None
        and not result["unchecked"]
        and set(daemons) <= set(result["daemons"])
    )


LOOPBACK_ONLY = 3  # failures from loopback, and none from elsewhere: a proxy stands in front


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
                f"jail {jail} reads no live source (no journal match, no existing log file: a log "
                "missing when fail2ban started is read from its next start on)"
            )
        elif not result["rules"].get(jail):
            error = result["action_errors"].get(jail) or f"no rule for it in the {tool} ruleset"
            found.append(
                f"jail {jail} runs but its firewall rules are not in place, so its bans would "
                f"not be enforced: {error}"
            )
    # a proxy jail (proxies.PROXIES) that finds failures in its log sees the proxy's clients; one
    # that finds none may read the wrong log (`access_log off`, another site's): the product
    # jail's loopback-only failures then still tell
    proxied = any(
        isinstance(result["seen"].get(jail), (list, tuple)) and result["seen"][jail][1] > 0
        for jail in expected_jails
        if jail.startswith("proxy-")
    )
    for jail, (lines, matched, loopback) in sorted(result["seen"].items()):
        if jail in expected_jails and lines and not matched:
            found.append(
                f"jail {jail} is blind: its source holds {lines} failure line(s) of its daemon in its last "
                "lines, and its filter finds none of them (fail2ban-regex); a filter or journal match of "
                "the node's own (a .local file?) overrides the deploy's"
            )
        elif (
            jail in expected_jails and not proxied and lines >= LOOPBACK_ONLY and loopback == lines
        ):
            found.append(
                f"jail {jail} sees only loopback or a trusted proxy: the last {lines} failures its "
                "daemon logged all came from 127.0.0.1, ::1 or fail2ban_trusted_proxies, which are "
                "never banned; a reverse proxy stands in front of it and its clients go unseen: see "
                "fail2ban_web_proxy, and for a proxy elsewhere the header it must set "
                "(docs/reverse-proxy.md)"
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
