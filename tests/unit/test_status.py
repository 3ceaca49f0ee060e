from pvefail2ban.jailstatus import parse_verify, problems, summary

GOOD = """ping=yes
Fail2Ban v1.0.2 reads log file that contains password failure report
and bans the corresponding IP addresses using firewall rules.

fail2ban> Status
|- Number of jail:\t2
`- Jail list:\tproxmox, sshd
fail2ban> Status for the jail: sshd
|- Filter
|  |- Currently failed:\t1
|  |- Total failed:\t6
|  `- Journal matches:\t_SYSTEMD_UNIT=ssh.service + _COMM=sshd
`- Actions
   |- Currently banned:\t1
   |- Total banned:\t2
   `- Banned IP list:\t10.213.77.200
fail2ban> Status for the jail: proxmox
|- Filter
|  |- Currently failed:\t0
|  |- Total failed:\t0
|  `- File list:\t/var/log/daemon.log
`- Actions
   |- Currently banned:\t0
   |- Total banned:\t0
   `- Banned IP list:\t
fail2ban> 
firewall=ok
rules sshd=ok
rules proxmox=ok
"""


def test_a_healthy_node_has_no_problems_and_a_summary():
    result = parse_verify(GOOD)
    assert result["jails"] == ["proxmox", "sshd"]
    assert result["status"]["sshd"]["banned_ips"] == ["10.213.77.200"]
    assert result["status"]["proxmox"]["file_list"] == ["/var/log/daemon.log"]
    assert problems(result, ["sshd", "proxmox"], [], "nft") == []
    assert summary(result, ["sshd", "proxmox"]) == (
        "fail2ban 1.0.2; sshd [journal] failed 1/6 banned 1/2 (10.213.77.200); "
        "proxmox [/var/log/daemon.log] failed 0/0 banned 0/0"
    )


def test_a_missing_jail_a_dead_firewall_and_a_broken_config_are_named():
    text = GOOD.replace("Jail list:\tproxmox, sshd", "Jail list:\tsshd").replace(
        "firewall=ok", "firewall=nft: not found"
    )
    result = parse_verify(text + "config=broken\nconfig: ERROR No file(s) found for glob /nope\n")
    found = problems(result, ["sshd", "proxmox"], [], "nft")
    assert any("jail proxmox is not running" in p for p in found)
    assert any("bans would not be enforced" in p for p in found)
    assert any("No file(s) found" in p for p in found)


def test_a_silent_fail2ban_is_named():
    result = parse_verify("ping=no\nstatus: Active: failed (Result: exit-code)\n")
    assert problems(result, ["sshd"], [], "nft") == [
        "fail2ban does not answer `fail2ban-client ping`: Active: failed (Result: exit-code)"
    ]


def test_a_jail_switched_off_that_runs_is_named_and_every_running_jail_is_summarised():
    result = parse_verify(GOOD)
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
    text = GOOD.replace("rules proxmox=ok", f"rules proxmox=missing\nactionerror proxmox {error}")
    found = problems(parse_verify(text), ["sshd", "proxmox"], [], "nft")
    assert found == [
        "jail proxmox runs but its firewall rules are not in place, so its bans would not be enforced: "
        + error
    ]
    bare = problems(
        parse_verify(GOOD.replace("rules sshd=ok", "rules sshd=missing")), ["sshd"], [], "nft"
    )
    assert bare == [
        "jail sshd runs but its firewall rules are not in place, so its bans would not be "
        "enforced: no rule for it in the nft ruleset"
    ]


def test_a_jail_whose_filter_finds_none_of_its_sources_failures_is_blind():
    result = parse_verify(GOOD + "seen proxmox 3 0\nseen sshd 2 2\nsource sshd=empty\n")
    assert result["seen"] == {"proxmox": (3, 0), "sshd": (2, 2)} and result["empty_sources"] == [
        "sshd"
    ]
    found = problems(result, ["sshd", "proxmox"], [], "nft")
    assert len(found) == 1 and found[0].startswith(
        "jail proxmox is blind: its source holds 3 failure line(s)"
    )


def test_the_summary_says_whether_the_config_was_tested_now_or_is_unchanged():
    now = parse_verify(GOOD + "config=tested\n")
    assert summary(now, ["sshd"]).endswith("; config test passed (now)")
    cached = parse_verify(GOOD + "config=unchanged 2026-11-26T02:00:00Z\n")
    assert summary(cached, ["sshd"]).endswith(
        "; config test passed (unchanged since 2026-11-26T02:00:00Z)"
    )
