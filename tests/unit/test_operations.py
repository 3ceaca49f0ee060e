"""The deploy's operations as pyinfra tests its own: recorded node facts in (tests/files/facts, what
the probe printed on one lab node of each variant), operation names and commands out, without a
node or Docker. The whole deploy runs (deploy_fail2ban: every task) on a pyinfra State whose hosts
answer the facts from the recordings; the commands are read from the operations it added. Also pins
the pyinfra behaviours the deploy relies on, so a pyinfra release that changes them fails here.
"""

import json
from contextlib import contextmanager

import pytest
from pyinfra.api import (
    Config,
    FileUploadCommand,
    FunctionCommand,
    Inventory,
    State,
    StringCommand,
    deploy,
)
from pyinfra.api.host import Host
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import server

from pvefail2ban import deploy_fail2ban
from pvefail2ban.facts import SCRIPTS, NodeFacts, parse_node
from pvefail2ban.plan import sha1
from pvefail2ban.share import DAEMON, LIB, RECEIVER
from pvefail2ban.turns import acting_as
from tests.unit.nodes import RECORDINGS, VARIANTS, recorded, said

LAB = json.loads((RECORDINGS / "lab.json").read_text())  # the recording run's inventory


@contextmanager
def pyinfra_state(hosts, monkeypatch, fresh=False):
    """A pyinfra State of `hosts` ({name: data}) whose facts are the recordings of each host's
    variant (data "variant"); the controller's addresses are the recording run's."""
    inventory = Inventory(([(name, dict(data)) for name, data in hosts.items()], {}))
    state = State(inventory, Config())
    for host in inventory:
        state.activate_host(host)  # as pyinfra does once it has connected

    def get_fact(host, cls, *args, **kwargs):
        facts = parse_node(said(host.data.get("variant"), fresh=fresh))
        units = {u.removesuffix(".service"): s for u, s in facts["units"].items()}
        if cls is NodeFacts:
            return facts
        if cls is SystemdStatus:
            return {u: s["active"] == "active" for u, s in units.items()}
        if cls is SystemdEnabled:
            return {u: s["enabled"] == "enabled" for u, s in units.items()}
        raise AssertionError(f"the deploy asked for a fact the recordings do not hold: {cls}")

    monkeypatch.setattr(Host, "get_fact", get_fact)
    monkeypatch.setattr(Host, "connected", True)
    monkeypatch.setattr("pvefail2ban.deploy.controller_addresses", lambda: LAB["controller"])
    with ctx_state.use(state), ctx_inventory.use(inventory), ctx_config.use(state.config):
        yield state, inventory


def command_text(command):
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    assert isinstance(command, FunctionCommand)
    return f"function {command.function.__name__}"


def operations(state, host):
    """[(operation name, [its commands as text])] added for `host`, in order. An operation added
    for several nodes has one name per distinct text (e.g. each node's package list): the name
    given is each of them that this node's commands fit, else all of them joined."""
    found = []
    with ctx_host.use(host):
        for op_hash in state.get_op_order():
            data = state.ops[host].get(op_hash)
            if data is not None:
                names = sorted(n.split(" | ", 1)[-1] for n in state.op_meta[op_hash].names)
                commands = [command_text(c) for c in data.command_generator()]
                fits = [n for n in names if all(p in " ".join(commands) for p in _packages(n))]
                found.append((" / ".join(fits if len(fits) == 1 else names), commands))
    return found


def _packages(name):
    return name.split(": ", 1)[1].split(", ") if name.startswith("Packages present: ") else []


def deployed(hosts, monkeypatch, fresh=False):
    """{host name: operations} of deploy_fail2ban on `hosts`, every host's turn taken."""
    with pyinfra_state(hosts, monkeypatch, fresh) as (state, inventory):
        for host in inventory:
            with ctx_host.use(host):
                deploy_fail2ban()
        return {host.name: operations(state, host) for host in inventory}


def the_lab(**data):
    return {n: {**d, **data} for n, d in LAB["nodes"].items()}


def test_a_converged_cluster_gets_the_check_alone_on_every_node(monkeypatch):
    """The no-op run: every task adds nothing where the facts show nothing to do, so each node
    gets one operation, the check, with no command at all (the facts' own reading of the check
    stands for it, judged as the operation is made: pyinfra says "No change"). One SSH command
    per node: the facts."""
    shipped = {DAEMON: "share.py", RECEIVER: "receive.py", f"{LIB}/nodelib.py": "nodelib.py"}
    recorded_files = recorded("pve8")["files"]
    stale = [
        n for p, n in shipped.items() if recorded_files[p][0] != sha1((SCRIPTS / n).read_bytes())
    ]
    assert not stale, f"{stale} changed since the recordings: run scripts/record-facts.py"
    ops = deployed(the_lab(), monkeypatch)
    assert set(ops) == set(LAB["nodes"]) and len(ops) == len(VARIANTS)
    for name, found in ops.items():
        assert found == [("Check: fail2ban protects this node", [])], (name, found)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_fresh_node_gets_packages_daemons_and_tested_files_then_the_check(variant, monkeypatch):
    ops = deployed(the_lab(), monkeypatch, fresh=True)
    name = next(n for n, d in LAB["nodes"].items() if d["variant"] == variant)
    names = [op for op, _ in ops[name]]
    # the journal: python3-systemd; a log file (the guide's, pveproxy's access log): inotify
    sources = {
        "legacy": ["python3-pyinotify"],
        "pbs": ["python3-systemd"],
        "pdm": ["python3-systemd"],
    }
    assert names[0].startswith("Packages present: fail2ban")
    assert names[-1] == "Check: fail2ban protects this node"
    assert "This node's share key (made here, never leaves it)" in names
    assert "Share service running with its peers" in names
    commands = dict(ops[name])
    install = commands[names[0]][0]
    assert install.startswith("sh -c ") and "apt-install.sh" in install and " fail2ban " in install
    wanted = sources.get(variant, ["python3-systemd", "python3-pyinotify"])
    assert [p for p in ("python3-systemd", "python3-pyinotify") if f" {p}" in install] == wanted
    staged = commands["Jails and proxmox filter in place, tested by fail2ban before going live"]
    uploads = [c.split("/stage", 1)[1] for c in staged if c.startswith("upload ")]
    assert "/etc/fail2ban/jail.d/01_sshd.local" in uploads and "/apply.sh" in uploads
    assert staged[-1].startswith("sh /var/lib/pve-fail2ban/stage/apply.sh ")
    assert commands["fail2ban running and enabled at boot"] == [
        "systemctl start fail2ban.service",
        "systemctl enable fail2ban.service",
    ]


@pytest.mark.parametrize(
    "variant, jail_file, filters",
    [
        ("pve8", "02_proxmox.local", ["proxmox", "proxmox-access"]),
        ("legacy", "02_proxmox.local", ["proxmox", "proxmox-access"]),
        ("pbs", "04_pbs.local", ["proxmox", "proxmox-rest-server", "pbs"]),
        ("pmg", "05_pmg.local", ["proxmox", "pmg", "proxmox-access"]),
        ("pdm", "06_pdm.local", ["proxmox", "proxmox-rest-server", "pdm"]),
    ],
)
def test_each_product_gets_its_jail_and_filters_self_tested(
    variant, jail_file, filters, monkeypatch
):
    ops = deployed(
        {"pve1": {"variant": variant, "ssh_hostname": "10.213.77.11"}}, monkeypatch, fresh=True
    )
    staged = dict(ops["pve1"])[
        "Jails and proxmox filter in place, tested by fail2ban before going live"
    ]
    uploads = [c.rsplit("/stage", 1)[1] for c in staged if c.startswith("upload ")]
    assert f"/etc/fail2ban/jail.d/{jail_file}" in uploads
    assert [
        u.rsplit("/", 1)[1].removesuffix(".conf") for u in uploads if "/filter.d/" in u
    ] == filters
    tested = [u.rsplit("/", 1)[1] for u in uploads if u.startswith("/selftest/")]
    assert tested == [f for f in filters if f != "proxmox-rest-server"]


def test_a_node_alone_shares_nothing(monkeypatch):
    ops = deployed(
        {"pve1": {"variant": "pve8", "ssh_hostname": "10.213.77.11"}}, monkeypatch, fresh=True
    )
    names = [op for op, _ in ops["pve1"]]
    assert not any("share" in op.lower() for op in names), names


# ---- the pyinfra behaviours the deploy relies on ------------------------------------------------


def test_pyinfra_runs_an_operations_generator_twice_and_both_runs_yield_alike(monkeypatch):
    """pyinfra runs each operation's generator when it is added (to tell a change) and again when
    it executes: our operations compute their commands inside it (peers_authorized calls its
    request there), so both runs must yield, and alike."""
    calls = []

    with pyinfra_state({"pve1": {"variant": "pve8"}}, monkeypatch) as (state, inventory):
        host = inventory.get_host("pve1")
        with ctx_host.use(host):
            server.shell(name="counted", commands=[StringCommand("echo", "x")])
            calls.append(len(state.ops[host]))
            (data,) = state.ops[host].values()
            first = [command_text(c) for c in data.command_generator()]
            second = [command_text(c) for c in data.command_generator()]
    assert first == second == ["echo x"] and calls == [1]
    assert state.check_for_changes  # pyinfra evaluates the generator at add time by default


def test_acting_as_adds_another_hosts_operations_under_the_same_deploy(monkeypatch):
    """The first host's turn adds every node's operations (turns.acting_as): each lands on its own
    host, under the current deploy's name, as one row for all nodes."""

    @deploy("turn")
    def turn():
        for target in inventory:
            with acting_as(target):
                server.shell(name="per node", commands=[StringCommand("echo", target.name)])

    with pyinfra_state({"pve1": {"variant": "pve8"}, "pve2": {"variant": "pve9"}}, monkeypatch) as (
        state,
        inventory,
    ):
        with ctx_host.use(inventory.get_host("pve1")):
            turn()
        found = {h.name: operations(state, h) for h in inventory}
    assert found == {"pve1": [("per node", ["echo pve1"])], "pve2": [("per node", ["echo pve2"])]}
    (op_hash,) = state.get_op_order()
    assert state.op_meta[op_hash].names == {"turn | per node"}
