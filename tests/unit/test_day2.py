import importlib.util
import json
from pathlib import Path

import pytest
from pyinfra.api.exceptions import DeployError, FactProcessError

from pvefail2ban.day2.model import (
    Fail2banState,
    bans_to_sync,
    check_ban_allowed,
    cluster_report,
    format_table,
    is_ignored,
    parse_addresses,
    parse_jails,
    parse_state,
    status_problems,
    status_rows,
    unreadable,
)

STATE_SCRIPT = Path(__file__).resolve().parents[2] / "pvefail2ban/scripts/state.py"
spec = importlib.util.spec_from_file_location("node_state_script", STATE_SCRIPT)
node_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(node_script)  # its functions only: reading fail2ban happens in read()

# fail2ban-server's answers over its socket, as recorded on a lab node (fail2ban 1.0.2)
SSHD_ANSWER = [
    (
        "Filter",
        [
            ("Currently failed", 0),
            ("Total failed", 0),
            ("Journal matches", ["_SYSTEMD_UNIT=ssh.service + _COMM=sshd + _COMM=sshd-session"]),
        ],
    ),
    ("Actions", [("Currently banned", 0), ("Total banned", 0), ("Banned IP list", [])]),
]
PROXMOX_ANSWER = [
    (
        "Filter",
        [("Currently failed", 0), ("Total failed", 3), ("File list", ["/var/log/daemon.log"])],
    ),
    (
        "Actions",
        [
            ("Currently banned", 2),
            ("Total banned", 2),
            ("Banned IP list", ["10.213.77.200", "192.0.2.9"]),
        ],
    ),
]
NFT = json.dumps(
    {
        "nftables": [
            {"metainfo": {}},
            {
                "set": {
                    "name": "addr-set-proxmox",
                    "elem": ["10.213.77.200", {"prefix": {"addr": "198.51.100.0", "len": 24}}],
                }
            },
        ]
    }
)
IPTABLES = "-N f2b-sshd\n-A f2b-sshd -s 192.0.2.77/32 -p tcp -j REJECT --reject-with tcp-reset\n-A f2b-sshd -j RETURN\n"


def recorded_state():
    """What state.py prints for a node whose proxmox jail lists a ban the firewall lacks."""
    proxmox = dict(
        node_script.jail_status(PROXMOX_ANSWER),
        ignoreip=["127.0.0.0/8", "10.213.77.0/24"],
        firewall=node_script.nft_elements(NFT),
    )
    sshd = dict(
        node_script.jail_status(SSHD_ANSWER),
        ignoreip=[],
        firewall=node_script.iptables_bans(IPTABLES),
    )
    return json.dumps(
        {
            "running": True,
            "active": None,
            "jails": {"proxmox": proxmox, "sshd": sshd},
            "events": [
                "2026-11-24 22:56:53,553 fail2ban.actions [311]: NOTICE  [proxmox] Ban 10.213.77.200"
            ],
        }
    )


STATE = recorded_state()


def test_the_node_script_reads_fail2bans_answers_and_the_firewall():
    proxmox = node_script.jail_status(PROXMOX_ANSWER)
    assert proxmox == {
        "failed": 0,
        "total_failed": 3,
        "banned": 2,
        "total_banned": 2,
        "journal_matches": None,
        "banned_ips": ["10.213.77.200", "192.0.2.9"],
        "file_list": ["/var/log/daemon.log"],
    }
    assert node_script.jail_status(SSHD_ANSWER)["journal_matches"] == (
        "_SYSTEMD_UNIT=ssh.service + _COMM=sshd + _COMM=sshd-session"
    )
    assert node_script.nft_elements(NFT) == ["10.213.77.200", "198.51.100.0/24"]
    assert node_script.iptables_bans(IPTABLES) == ["192.0.2.77"]
    restored = (
        "2026-11-24 22:56:53,553 fail2ban.actions [311]: NOTICE  [sshd] Restore Ban 192.0.2.1"
    )
    assert node_script.last_events([restored]) == [restored]
    # fail2ban quotes attackers' text inside some of its lines: never an event, nor a peer's failure
    quoted = "2026-11-24 22:56:53,553 fail2ban.filter [311]: WARNING Failed to process line: " + (
        repr(
            restored.replace("fail2ban.actions", "fail2ban.filter").replace(
                "Restore Ban", "Attempt"
            )
        )
    )
    assert node_script.last_events([quoted, "x " + restored]) == []
    assert node_script.shared_failures([quoted, "x " + quoted]) == {}
    attempt = "2026-11-24 22:56:53,553 fail2ban.filter [311]: INFO    [sshd] Attempt 192.0.2.1 - "
    assert node_script.shared_failures([attempt + "2026-11-24 22:56:53"] * 2) == {"sshd": 2}


def test_state_is_parsed_and_unenforced_bans_are_found():
    state = parse_state(STATE)
    proxmox = state["jails"]["proxmox"]
    assert state["running"] and proxmox["banned_ips"] == ["10.213.77.200", "192.0.2.9"]
    assert (
        proxmox["ignoreip"] == ["127.0.0.0/8", "10.213.77.0/24"]
        and state["jails"]["sshd"]["ignoreip"] == []
    )
    assert proxmox["firewall"] == ["10.213.77.200", "198.51.100.0/24"]
    assert proxmox["not_enforced"] == ["192.0.2.9"]
    assert state["jails"]["sshd"]["firewall"] == ["192.0.2.77"]
    assert status_problems({"pve1": state}) == [
        "pve1: proxmox lists 192.0.2.9 as banned but the firewall does not enforce it"
    ]
    table = format_table(status_rows({"pve1": state}))
    assert "NOT ENFORCED: 192.0.2.9" in table and table.splitlines()[0].startswith("node")


def test_each_node_must_run_the_jail_of_each_product_it_runs():
    pbs = parse_state(STATE.replace('"jails"', '"products": ["pbs"], "jails"', 1))
    both = parse_state(STATE.replace('"jails"', '"products": ["pve", "pbs"], "jails"', 1))
    bare = parse_state(STATE.replace('"jails"', '"products": [], "jails"', 1))
    assert [p for p in status_problems({"pbs1": pbs}) if "missing" in p] == [
        "pbs1: jail pbs is missing"
    ]
    assert [p for p in status_problems({"x": both}) if "missing" in p] == ["x: jail pbs is missing"]
    assert [p for p in status_problems({"x": bare}) if "missing" in p] == []
    assert parse_jails(None, pbs, "pbs1") == ["sshd", "proxmox"]  # those of ours that run there


def with_record(record):
    """STATE (sshd and proxmox run) with the deploy's record of our jails (nodelib.EXPECTED)."""
    return parse_state(STATE.replace('"jails"', f'"expected": {json.dumps(record)}, "jails"', 1))


def test_status_judges_a_node_by_the_deploys_record_of_its_jails():
    # the settings switched sshd off (fail2ban_sshd_enabled = False) and the node runs pbs's jail:
    # the old rule (sshd everywhere, a jail per product) would say sshd and pbs are missing
    sshd_off = with_record({"jails": ["proxmox"], "off": ["sshd"]})
    sshd_off["products"] = ["pve", "pbs"]
    problems = status_problems({"pve1": sshd_off})
    assert [p for p in problems if "missing" in p or "switched" in p] == [
        "pve1: jail sshd runs, but the deploy's settings switched it off"
    ]
    sshd_off["jails"].pop("sshd")
    assert not [
        p for p in status_problems({"pve1": sshd_off}) if "jail" in p and "enforce" not in p
    ]
    # a jail the record names, removed by hand, is missing; a proxy's jail the record names too
    proxied = with_record({"jails": ["nginx", "proxmox", "sshd"], "off": []})
    assert "pve1: jail nginx is missing" in status_problems({"pve1": proxied})


@pytest.mark.parametrize(
    "record",
    [
        {"jails": ["sshd"]},
        {"jails": ["sshd"], "off": [], "more": 1},
        {"jails": "sshd", "off": []},
        {"jails": ["ss hd"], "off": []},
        {"jails": ["sshd"], "off": [["x"]]},
        {"jails": ["x"] * 257, "off": []},
        ["sshd"],
    ],
)
def test_a_record_of_jails_that_is_not_ours_is_refused_whole(record):
    with pytest.raises(ValueError, match="record of our jails"):
        with_record(record)


def test_an_unreadable_record_is_a_problem_that_names_the_fix():
    state = parse_state(
        STATE.replace('"jails"', '"expected": null, "expected_error": "bad\\u001b[0m", "jails"', 1)
    )
    assert "pve1: bad?[0m (deploy.py writes it anew)" in status_problems({"pve1": state})


def test_a_down_node_is_a_problem():
    down = parse_state('{"running": false, "active": "failed", "jails": {}, "events": []}')
    assert status_problems({"pve2": down}) == ["pve2: fail2ban is not running"]
    assert status_rows({"pve2": down})[0][2] == "DOWN"


def test_an_unreachable_node_is_in_the_table_the_report_and_the_problems():
    states = {
        "pve1": parse_state(STATE.replace(', "192.0.2.9"', "")),
        "pve2": unreadable("cannot connect: Could not connect (timed out)"),
    }
    text, report, problems = cluster_report(states)
    assert sorted(report["nodes"]) == ["pve1", "pve2"]
    assert problems == [
        "pve2: unreachable or unreadable: cannot connect: Could not connect (timed out)"
    ]
    assert report["problems"] == problems
    row = [line for line in text.splitlines() if line.startswith("pve2")]
    assert row and "UNREACHABLE" in row[0] and "timed out" in row[0]
    assert bans_to_sync("pve2", states) == []  # nothing is written to a node that was not read
    assert bans_to_sync("pve1", states) == []


@pytest.mark.parametrize("output", [["garbage"], [], ["Traceback (most recent call last):"]])
def test_state_output_the_fact_cannot_read_fails_that_node_only(output):
    with pytest.raises(FactProcessError, match="unexpected output"):
        Fail2banState().process(output)


@pytest.mark.parametrize("value", ["10.0.0.300", "", [], "1.2.3.4,nope", 42])
def test_bad_addresses_are_named(value):
    with pytest.raises(DeployError, match="nothing was changed"):
        parse_addresses(value)


def test_addresses_are_canonical():
    assert parse_addresses("192.0.2.1, 2001:DB8::1") == ["192.0.2.1", "2001:db8::1"]


def test_ignoreip_membership_covers_cidrs_and_skips_host_names():
    assert is_ignored("10.213.77.5", ["admin.example.com", "10.213.77.0/24"])
    assert not is_ignored("192.0.2.5", ["127.0.0.1/8", "::1"])


def test_ban_refusals():
    state = parse_state(STATE)
    for address, why in (
        ("10.213.77.1", "controller"),
        ("10.213.77.12", "inventory"),
        ("10.213.77.99", "ignoreip"),
    ):
        with pytest.raises(DeployError, match=why):
            check_ban_allowed(
                [address], ["proxmox"], state, "10.213.77.1", ["10.213.77.12"], False, "pve1"
            )
    check_ban_allowed(["10.213.77.1"], ["proxmox"], state, "10.213.77.1", [], True, "pve1")


def test_sync_adds_what_others_banned_except_ignored():
    banned_here = parse_state(STATE)
    other = parse_state(
        STATE.replace('"10.213.77.200", "192.0.2.9"', '"198.51.100.1", "10.213.77.50"')
    )
    assert bans_to_sync("pve1", {"pve1": banned_here, "pve2": other}) == [
        ("proxmox", "198.51.100.1", ["pve2"])
    ]
    assert bans_to_sync("pve1", {"pve1": banned_here}) == []


def test_status_shows_how_many_failures_came_from_the_peers():
    state = parse_state(STATE.replace('"failed": 0,', '"failed": 0, "peers_failed": 7,', 1))
    table = format_table(status_rows({"pve1": state}))
    header, first = table.splitlines()[:2]
    assert "from peers" in header
    column = header.index("from peers")
    assert first[column:].split()[0] == "7"
    with pytest.raises(ValueError, match="is not a count"):
        parse_state(STATE.replace('"failed": 0,', '"failed": 0, "peers_failed": -1,', 1))


def test_status_names_a_jail_of_ours_that_reads_nothing_and_leaves_the_admins_alone():
    """A jail of ours with no journal match and no log file (its log was missing when fail2ban
    started: nodelib.NO_LOG) is named; a jail of the admin's may read the whole journal."""
    from pvefail2ban.day2.model import status_problems

    def jail(journal=None, files=None):
        return {"journal_matches": journal, "file_list": files, "not_enforced": []}

    state = {
        "running": True,
        "products": ["pve"],
        "jails": {
            "sshd": jail(journal="_SYSTEMD_UNIT=ssh.service"),
            "proxmox": jail(journal="_SYSTEMD_UNIT=pvedaemon.service"),
            "proxy-nginx": jail(),
            "mine": jail(),
        },
    }
    assert status_problems({"pve1": state}) == [
        "pve1: jail proxy-nginx reads no live source (no journal match, no existing log file)"
    ]
