"""The check's answer (scripts/probe.py) read and judged: jailstatus.check_result, problems and
summary."""

import copy

from pvefail2ban.jailstatus import check_result, complete, problems, summary

GOOD = {
    "tool": "nft",
    "ping": True,
    "version": "1.0.2",
    "names": ["proxmox", "sshd"],
    "jails": {
        "sshd": {
            "failed": 1,
            "total_failed": 6,
            "banned": 1,
            "total_banned": 2,
            "banned_ips": ["10.213.77.200"],
            "journal_matches": "_SYSTEMD_UNIT=ssh.service + _COMM=sshd",
            "file_list": None,
        },
        "proxmox": {
            "failed": 0,
            "total_failed": 0,
            "banned": 0,
            "total_banned": 0,
            "banned_ips": [],
            "journal_matches": None,
            "file_list": ["/var/log/daemon.log"],
        },
    },
    "firewall": "ok",
    "rules": {"sshd": True, "proxmox": True},
    "action_errors": {},
    "seen": {},
    "config": {"state": "untested", "when": None, "errors": []},
}


def good(**changes):
    doc = copy.deepcopy(GOOD)
    doc.update(changes)
    return doc


def test_a_healthy_node_has_no_problems_and_a_summary():
    result = check_result(GOOD)
    assert result["jails"] == ["proxmox", "sshd"]
    assert result["status"]["sshd"]["banned_ips"] == ["10.213.77.200"]
    assert result["status"]["proxmox"]["file_list"] == ["/var/log/daemon.log"]
    assert problems(result, ["sshd", "proxmox"], [], "nft") == []
    assert summary(result, ["sshd", "proxmox"]) == (
        "fail2ban 1.0.2; sshd [journal] failed 1/6 banned 1/2 (10.213.77.200); "
        "proxmox [/var/log/daemon.log] failed 0/0 banned 0/0"
    )


def test_a_missing_jail_a_dead_firewall_and_a_broken_config_are_named():
    broken = {"state": "broken", "errors": ["ERROR No file(s) found for glob /nope"]}
    result = check_result(good(names=["sshd"], firewall="nft: not found", config=broken))
    found = problems(result, ["sshd", "proxmox"], [], "nft")
    assert any("jail proxmox is not running" in p for p in found)
    assert any("bans would not be enforced" in p for p in found)
    assert any("No file(s) found" in p for p in found)


def test_a_silent_fail2ban_is_named():
    result = check_result(
        {"tool": "nft", "ping": False, "service": ["Active: failed (Result: exit-code)"]}
    )
    assert problems(result, ["sshd"], [], "nft") == [
        "fail2ban does not answer `fail2ban-client ping`: Active: failed (Result: exit-code)"
    ]


def test_a_jail_switched_off_that_runs_is_named_and_every_running_jail_is_summarised():
    result = check_result(GOOD)
    assert problems(result, ["proxmox"], ["sshd"], "nft") == [
        "jail sshd runs although the settings switch it off"
    ]
    assert summary(result, ["proxmox"]) == (
        "fail2ban 1.0.2; proxmox [/var/log/daemon.log] failed 0/0 banned 0/0; "
        "sshd (not ours) [journal] failed 1/6 banned 1/2 (10.213.77.200)"
    )


def test_a_jail_whose_firewall_rules_are_missing_is_named_with_fail2bans_error():
    error = (
        "2026-11-26 02:00:01,123 fail2ban.actions [99]: ERROR   Failed to start jail 'proxmox' action "
        "'nftables-multiport': Error starting action Jail('proxmox')/nftables-multiport: 'Script error'"
    )
    doc = good(rules={"sshd": True, "proxmox": False}, action_errors={"proxmox": error})
    assert problems(check_result(doc), ["sshd", "proxmox"], [], "nft") == [
        "jail proxmox runs but its firewall rules are not in place, so its bans would not be enforced: "
        + error
    ]
    bare = problems(check_result(good(rules={"sshd": False})), ["sshd"], [], "nft")
    assert bare == [
        "jail sshd runs but its firewall rules are not in place, so its bans would not be "
        "enforced: no rule for it in the nft ruleset"
    ]


def test_a_jail_whose_filter_finds_none_of_its_sources_failures_is_blind():
    result = check_result(good(seen={"proxmox": [3, 0], "sshd": None, "pbs": [0, 0]}))
    # an earlier probe's record (two counts) reads as no failure from loopback
    assert result["seen"] == {"proxmox": (3, 0, 0)} and result["empty_sources"] == ["sshd"]
    found = problems(result, ["sshd", "proxmox"], [], "nft")
    assert len(found) == 1 and found[0].startswith(
        "jail proxmox is blind: its source holds 3 failure line(s)"
    )


def test_a_jail_whose_failures_all_come_from_loopback_stands_behind_a_proxy():
    """Behind a reverse proxy the daemon logs the proxy (loopback) as every client: never banned.
    Unless a proxy jail of ours reads the proxy's log, the node is not protected."""
    result = check_result(good(seen={"proxmox": [4, 4, 4], "sshd": [2, 2, 0]}))
    (found,) = problems(result, ["sshd", "proxmox"], [], "nft")
    assert found.startswith(
        "jail proxmox sees only loopback or a trusted proxy: the last 4 failures"
    )
    assert "fail2ban_web_proxy" in found
    seen = {"proxmox": [4, 4, 4], "sshd": [2, 2, 0], "proxy-nginx": [4, 4, 0]}
    behind = problems(check_result(good(seen=seen)), ["sshd", "proxmox", "proxy-nginx"], [], "nft")
    assert not [p for p in behind if "loopback" in p]  # the proxy's jail reads the clients
    seen["proxy-nginx"] = [0, 0, 0]  # ... unless its log holds none of them (the wrong log)
    wrong = problems(check_result(good(seen=seen)), ["sshd", "proxmox", "proxy-nginx"], [], "nft")
    assert [p for p in wrong if "sees only loopback" in p]
    mixed = check_result(good(seen={"proxmox": [4, 4, 3]}))  # a client from elsewhere too
    assert problems(mixed, ["sshd", "proxmox"], [], "nft") == []
    few = check_result(good(seen={"proxmox": [2, 2, 2]}))
    assert problems(few, ["sshd", "proxmox"], [], "nft") == []


def test_the_summary_says_whether_the_config_was_tested_now_or_is_unchanged():
    now = check_result(good(config={"state": "tested", "when": "2026-11-26T02:00:00Z"}))
    assert summary(now, ["sshd"]).endswith("; config test passed (now)")
    cached = check_result(good(config={"state": "unchanged", "when": "2026-11-26T02:00:00Z"}))
    assert summary(cached, ["sshd"]).endswith(
        "; config test passed (unchanged since 2026-11-26T02:00:00Z)"
    )


def test_the_check_read_with_the_facts_stands_only_when_nothing_is_left_to_test():
    recorded = good(config={"state": "unchanged", "when": "2026-11-26T09:53:43Z"})
    share = {"pve-fail2ban-share": "bans shared"}
    read = {**check_result(recorded), "daemons": {"pve-fail2ban-share": "active"}}
    assert complete(read, "nft", share)
    assert not complete(read, "iptables", share)  # read for another tool
    untested = {**check_result(good()), "daemons": read["daemons"]}
    assert not complete(untested, "nft", share)  # changed since its last test
    unchecked = {
        **check_result({**recorded, "seen": {"sshd": "unchecked"}}),
        "daemons": read["daemons"],
    }
    assert not complete(unchecked, "nft", share)
    assert not complete(read, "nft", {**share, "pve-fail2ban-events": "x"})


def test_what_a_node_says_is_shown_printable_only():
    result = check_result(good(version="1.0\x1b[2J", names=["sshd\n\x1b]0;x\x07"]))
    assert result["version"] == "1.0?[2J" and result["jails"] == ["sshd??]0;x?"]
