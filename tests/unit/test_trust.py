"""Every byte a node, a peer, a log line or --data sends is hostile input: each parser either turns
it into a canonical value or refuses it with an error naming it (never another exception that
would stop the other nodes), and nothing of it reaches a shell string or an authorized_keys line
unparsed. Property tests throw hostile strings (hypothesis) at every parser."""

import ast
import importlib.util
import ipaddress
import json
import re
import select
import shlex
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyinfra.api.exceptions import DeployError, FactProcessError

from pvefail2ban import canonical
from pvefail2ban.day2.model import parse_addresses, parse_jails, parse_state
from pvefail2ban.defaults import DEFAULTS
from pvefail2ban.facts import SCRIPTS, parse_node
from pvefail2ban.jailstatus import check_result, problems, summary
from pvefail2ban.settings import SettingsError, validate
from pvefail2ban.share import (
    MARK,
    PEERS,
    RECEIVER,
    Member,
    authorization,
    authorized_line,
    members,
    share_files,
)
from tests.unit.sshkeys import ssh_key

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pvefail2ban"
QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# what an attacker types where a value goes: quotes, $(), backticks, newlines, %, NUL, long text
HOSTILE = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            'fe80::1%x",from="*',
            'fe80::1%x" ssh-ed25519 AAAA evil',
            "fe80::1%$(touch${IFS}pwned)",
            "::ffff:192.0.2.7",
            "192.0.2.7\nfe80::1",
            "192.0.2.7\x00",
            "0.0.0.0/0",
            "::/0",
            "`id`",
            "a" * 65536,
            "-oProxyCommand=touch /pwned",
            "192.0.2.7 ; rm -rf /",
        ]
    ),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["192.0.2.7", "2001:db8::7", "fe80::1"]),
        st.text(max_size=20),
    ),
)


def script(name):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"trust_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_canonical(address):
    return (
        isinstance(address, str)
        and re.fullmatch(r"[0-9a-f:.]+", address)
        and str(ipaddress.ip_address(address)) == address
        and not (
            ipaddress.ip_address(address).version == 6 and ipaddress.ip_address(address).ipv4_mapped
        )
    )


# ---- one canonical address ----------------------------------------------------------------------


@QUICK
@given(HOSTILE)
def test_an_address_is_canonical_or_refused(text):
    for parse in (canonical.canonical_address, canonical.bannable_address, canonical.host_address):
        try:
            address = parse(text)
        except ValueError as error:
            assert repr(text)[:40] in str(error) or "is not" in str(error)
            continue
        assert is_canonical(address) and parse(address) == address


def test_scope_ids_networks_and_mapped_addresses():
    assert canonical.canonical_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert canonical.canonical_address("2001:DB8:0::7") == "2001:db8::7"
    for bad in ("fe80::1%eth0", 'fe80::1%x",from="*', "10.0.0.0/8", "::/0", " 192.0.2.7", ""):
        with pytest.raises(ValueError, match="is not an IP address"):
            canonical.canonical_address(bad)
    for not_a_host in ("0.0.0.0", "::", "127.0.0.1", "224.0.0.1", "fe80::1", "255.255.255.255"):
        with pytest.raises(ValueError):
            canonical.host_address(not_a_host)


# ---- what a node reports: its facts -------------------------------------------------------------

BASE = {"python3": True, "os": {"id": "debian"}, "systemd": True}
# where a hostile value can sit in the probe's answer (each key: how it is put there)
PLACES = {
    "addresses": lambda v: {"addresses": [v]},
    "client": lambda v: {"client": v},
    "share_key": lambda v: {"share_key": v},
    "hostkeys": lambda v: {"hostkeys": [v]},
    "share_peers": lambda v: {"share_peers": v},
    "share_peers json": lambda v: {"share_peers": json.dumps({"peers": [{"name": "pve2", "address": v, "port": 22, "hostkeys": [ssh_key(2)]}]})},
    "textfile_dir": lambda v: {"textfile_dir": v},
    "files": lambda v: {"files": {v: ["0" * 40, "644", "root:root"]}},
    "file owner": lambda v: {"files": {"/etc/fail2ban/jail.d/01_sshd.local": ["0" * 40, "644", v]}},
    "packages": lambda v: {"packages": {"fail2ban": v}},
    "os": lambda v: {"os": {"id": v}},
    "journald": lambda v: {"journald": {"maxlevelstore": v}},
    "units": lambda v: {"units": {"fail2ban.service": {"load": "loaded", "active": v, "enabled": "x", "pid": 1}}},
    "unit name": lambda v: {"units": {v: {"load": "loaded"}}},
    "sshd ports": lambda v: {"sshd": {"ports": [v]}},
    "sshd loglevel": lambda v: {"sshd": {"loglevel": v}},
    "releases": lambda v: {"releases": {"pbs": {"version": v, "date": v}}},
}  # fmt: skip


def node_said(**doc):
    return json.dumps({**BASE, **doc})


@QUICK
@given(st.sampled_from(sorted(PLACES)), HOSTILE | st.integers() | st.none())
def test_node_facts_are_canonical_or_the_node_fails(place, value):
    try:
        node = parse_node(node_said(**PLACES[place](value)))
    except ValueError:
        return  # the node fails, alone, with the reason (FactProcessError)
    assert all(is_canonical(a) for a in node["addresses"])
    assert node["client"] is None or is_canonical(node["client"])
    for key_text in [node["share_key"], *node["hostkeys"]]:
        assert key_text is None or canonical.public_key(key_text) == key_text
    for peer in node["share_peers"] or []:
        assert canonical.peer_record(peer) == peer
    assert node["textfile_dir"] is None or canonical.safe_path(node["textfile_dir"])
    assert all(re.fullmatch(r"\d{1,5}", p) for p in node["sshd_ports"])
    for text in (node["os_id"], node["journald_maxlevelstore"], node["fail2ban_activestate"]):
        assert text is None or re.fullmatch(r"[A-Za-z0-9_.+-]*", text)
    assert all(
        v is None or v.isprintable() for r in node["releases"].values() if r for v in r.values()
    )


@QUICK
@given(st.text(max_size=300))
def test_whatever_a_node_prints_is_facts_or_a_refusal(text):
    try:
        parse_node(text)
    except ValueError:
        pass


def test_a_forged_address_fails_the_node_naming_it():
    for forged in ('fe80::1%x",from="*', "0.0.0.0/0", "::/0", "0.0.0.0"):
        with pytest.raises(ValueError, match=re.escape(repr(forged)[:30])):
            parse_node(node_said(addresses=[forged]))


@QUICK
@given(
    st.dictionaries(
        st.sampled_from(["name", "address", "port", "hostkeys"]),
        HOSTILE | st.integers() | st.lists(HOSTILE, max_size=3),
    )
)
def test_a_peer_record_from_a_nodes_peers_json_is_parsed_or_refused(record):
    try:
        peer = canonical.peer_record(record)
    except ValueError:
        return
    assert canonical.NAME.fullmatch(peer["name"]) and not peer["address"].startswith("-")
    assert " " not in peer["address"] and 1 <= peer["port"] <= 65535


# ---- what a node reports: fail2ban's state (day-2) ------------------------------------------------

JAIL = st.fixed_dictionaries(
    {},
    optional={
        "banned_ips": st.lists(HOSTILE, max_size=3),
        "firewall": st.lists(HOSTILE, max_size=3),
        "ignoreip": st.lists(HOSTILE, max_size=3),
        "from": st.dictionaries(HOSTILE, HOSTILE, max_size=2),
        "failed": st.integers() | HOSTILE,
        "file_list": st.lists(HOSTILE, max_size=2),
        "journal_matches": HOSTILE,
    },
)


@QUICK
@given(st.dictionaries(HOSTILE, JAIL, max_size=3), st.lists(HOSTILE, max_size=3))
def test_fail2ban_state_is_canonical_or_the_node_is_unreadable(jails, events):
    text = json.dumps({"running": True, "active": None, "jails": jails, "events": events})
    try:
        state = parse_state(text)
    except ValueError:
        return  # status shows the node UNREADABLE with the reason; nothing of it is used
    for name, jail in state["jails"].items():
        assert canonical.NAME.fullmatch(name)
        assert all(is_canonical(a) for a in jail["banned_ips"])
        assert all(is_canonical(a) for a in jail["from"])
        assert all(canonical.NAME.fullmatch(o) for o in jail["from"].values())
    assert all(e.isprintable() and e.isascii() for e in state["events"])


def test_a_state_with_an_injected_address_is_refused():
    bad = "fe80::1%$(touch${IFS}pwned)"
    text = json.dumps(
        {"running": True, "active": None, "events": [], "jails": {"sshd": {"banned_ips": [bad]}}}
    )
    with pytest.raises(ValueError, match=re.escape("fe80::1%$(touch")):
        parse_state(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | HOSTILE,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(HOSTILE, children, max_size=3)
    ),
    max_leaves=12,
)
CHECK_KEYS = ["tool", "ping", "version", "names", "jails", "firewall", "rules", "seen", "config"]
CHECK_KEYS += ["daemons", "service", "action_errors"]


@QUICK
@given(st.dictionaries(st.sampled_from(CHECK_KEYS), JSONISH))
def test_the_checks_answer_is_read_or_refused_whatever_it_says(doc):
    try:
        result = check_result(doc)
    except ValueError:
        return  # the check reports it (NOT PROTECTED: its answer is not the check's)
    problems(result, ["sshd"], [], "nft")
    summary(result, ["sshd"])
    shown = [result["version"], *result["jails"], *result["service"], *result["status"]]
    assert all(isinstance(t, str) and t.isprintable() for t in shown)


# ---- --data: every key a day-2 command takes ----------------------------------------------------


@QUICK
@given(HOSTILE | st.lists(HOSTILE, max_size=3) | st.integers() | st.none())
def test_data_ip_is_canonical_or_refused_before_any_node(value):
    try:
        addresses = parse_addresses(value)
    except DeployError as error:
        assert "nothing was changed" in str(error)
        return
    assert addresses and all(is_canonical(a) for a in addresses)


@QUICK
@given(HOSTILE | st.lists(HOSTILE, max_size=3) | st.integers())
def test_data_jails_are_names_or_refused(value):
    state = {"jails": {"sshd": {}, "proxmox": {}}}
    try:
        jails = parse_jails(value, state, "pve1")
    except DeployError:
        return
    assert set(jails) <= {"sshd", "proxmox"}


@QUICK
@given(st.sampled_from(sorted(DEFAULTS)), HOSTILE | st.integers() | st.lists(HOSTILE, max_size=2))
def test_every_setting_is_checked_or_refused_naming_it(key, value):
    try:
        checked = validate({**DEFAULTS, key: value})
    except SettingsError as error:
        assert key in str(error)
        return
    for entry in checked["ignoreip"]:
        assert not any(c in entry for c in " \"'$`;\n%")


# ---- authorized_keys: built from canonical values only ------------------------------------------


def sshd_options(line):
    """(options, key type, key, comment) as sshd reads an authorized_keys line: the options end at
    the first space outside double quotes, and split at commas outside them."""
    quoted, end = False, None
    for i, char in enumerate(line):
        if char == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif char in " \t" and not quoted:
            end = i
            break
    options, rest = line[:end], line[end + 1 :]
    parts, quoted, current = [], False, ""
    for char in options:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    kind, key, *comment = rest.split(" ")
    return parts, kind, key, " ".join(comment)


def check_authorized_line(line, name):
    """The line as sshd reads it is exactly: restrict, one from= of host addresses, one command=
    running the receiver for node `name`, then an ed25519 key and our comment."""
    options, kind, blob, comment = sshd_options(line)
    assert options[0] == "restrict" and len(options) == 3, line
    assert options[1].startswith('from="') and options[1].endswith('"')
    assert all(is_canonical(a) for a in options[1][6:-1].split(","))
    assert options[2] == f'command="{RECEIVER} {name}"'
    assert kind == "ssh-ed25519" and f"{kind} {blob}" == canonical.public_key(f"{kind} {blob}")
    assert comment == f"{MARK}{name}" and "\n" not in line


@QUICK
@given(st.lists(HOSTILE, max_size=4), HOSTILE, HOSTILE)
def test_each_authorized_line_is_restrict_from_command_and_our_key(addresses, key, name):
    """Whatever a member holds (hostile addresses, key, name), a line is written only from values
    that pass, and then it is exactly what sshd must read; anything else is refused."""
    member = Member(
        name=name, address="192.0.2.1", port=22, addresses=addresses, hostkeys=[], key=key
    )
    try:
        line = authorized_line(member)
    except ValueError:
        line = None
    if line is not None:
        check_authorized_line(line, name)
    honest = Member(
        name="pve1", address="192.0.2.1", port=22, addresses=["192.0.2.1", "2001:db8::1"],
        hostkeys=[], key=ssh_key("K1"),
    )  # fmt: skip
    check_authorized_line(authorized_line(honest), "pve1")  # the check itself sees a good line


def test_the_line_checker_finds_a_second_key_smuggled_in_an_option():
    forged = (
        f'restrict,from="192.0.2.1,fe80::1%x",from="*",command="{RECEIVER} pve1" '
        f"{ssh_key('K1')} {MARK}pve1"
    )
    with pytest.raises(AssertionError):
        check_authorized_line(forged, "pve1")


def test_two_nodes_claiming_one_share_key_get_no_line_for_it():
    on = validate(dict(DEFAULTS))
    node = {"sshd_ports": ["22"], "hostkeys": [ssh_key(1)], "share_peers": []}
    nodes = [
        (
            f"pve{n}",
            f"192.0.2.{n}",
            on,
            {**node, "addresses": [f"192.0.2.{n}"], "share_key": ssh_key("SAME")},
        )
        for n in (1, 2)
    ] + [
        ("pve3", "192.0.2.3", on, {**node, "addresses": ["192.0.2.3"], "share_key": ssh_key("K3")})
    ]
    wanted = authorization(members(nodes))
    assert sorted(wanted["want"]) == ["pve3"] and wanted["keep"] == ["pve1", "pve2"]


def test_a_node_without_host_keys_shares_nothing():
    on = validate(dict(DEFAULTS))
    node = {"sshd_ports": ["22"], "share_peers": [], "addresses": ["192.0.2.1"]}
    nodes = [
        ("pve1", "192.0.2.1", on, {**node, "hostkeys": [], "share_key": ssh_key("K1")}),
        ("pve2", "192.0.2.2", on, {**node, "hostkeys": [ssh_key(2)], "share_key": ssh_key("K2")}),
        ("pve3", "192.0.2.3", on, {**node, "hostkeys": [ssh_key(3)], "share_key": ssh_key("K3")}),
    ]
    assert [m.name for m in members(nodes)] == ["pve2", "pve3"]


def test_a_node_outside_the_run_keeps_only_what_every_record_agrees_on():
    on = validate(dict(DEFAULTS))
    honest = {"name": "pve3", "address": "192.0.2.3", "port": 22, "hostkeys": [ssh_key("H3")]}
    forged = {**honest, "hostkeys": [ssh_key("H3"), ssh_key("EVIL")]}
    node = {"addresses": ["192.0.2.1"], "sshd_ports": ["22"], "hostkeys": [ssh_key(1)]}
    nodes = [
        ("pve1", "192.0.2.1", on, {**node, "share_key": ssh_key("K1"), "share_peers": [forged]}),
        ("pve2", "192.0.2.2", on, {**node, "share_key": ssh_key("K2"), "share_peers": [honest]}),
        ("pve3", "192.0.2.3", on, None),
    ]
    pve3 = members(nodes)[2]
    assert pve3.hostkeys == [ssh_key("H3")] and pve3.address == "192.0.2.3"
    moved = {**honest, "address": "-oProxyCommand=x"}
    nodes[0] = (*nodes[0][:3], {**nodes[0][3], "share_peers": [moved]})
    pve3 = members(nodes)[2]  # no agreement: its line stays, but it is nobody's peer until back
    assert (pve3.name, pve3.hostkeys, pve3.key, pve3.address) == ("pve3", [], None, "192.0.2.3")
    config = json.loads(share_files("pve1", ["sshd"], members(nodes), SCRIPTS)[PEERS][0])
    assert [p["name"] for p in config["peers"]] == ["pve2"]
    assert authorization(members(nodes))["keep"] == ["pve3"]


# ---- no shell string built from data --------------------------------------------------------------

SINKS = {"shell", "StringCommand", "run_shell_command", "python_script"}  # shipped_script quotes
CONTROLLER = sorted(p for p in PACKAGE.rglob("*.py") if "scripts" not in p.parts)


def _safe(node):
    """A value interpolated into a command text: a constant (ALL_CAPS), or quoted there."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return name.isupper()
    if isinstance(node, ast.Call):
        func = (
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        )
        # shipped_script quotes each of its arguments (test_shipped_scripts_quote_their_arguments)
        quoting = ("quote", "QuoteString", "shipped_script")
        return func in quoting or (func == "rsplit" and _safe(node.func.value))
    return False


class Code:
    """The controller's functions, each known by its module and name; a name a module uses is
    resolved through that module's own definitions and its imports (aliases included)."""

    def __init__(self, paths):
        self.trees = {path: ast.parse(path.read_text()) for path in paths}
        self.defs = {
            (path, node.name): node
            for path, tree in self.trees.items()
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
        }

    def resolve(self, path, name):
        """(module path, function node) that `name` means in module `path`, or None."""
        if (path, name) in self.defs:
            return path, self.defs[(path, name)]
        for node in ast.walk(self.trees[path]):
            if isinstance(node, ast.ImportFrom) and node.level:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        base = path.parent
                        for _ in range(node.level - 1):
                            base = base.parent
                        target = base.joinpath(*(node.module or "").split(".")).with_suffix(".py")
                        if (target, alias.name) in self.defs:
                            return target, self.defs[(target, alias.name)]
        return None


def _children(node):
    """The nodes under `node`, but not under a quoting call: what is quoted there is safe."""
    for child in ast.iter_child_nodes(node):
        if (
            isinstance(child, ast.Call)
            and _safe(child)
            and not getattr(child.func, "attr", "") == "rsplit"
        ):
            continue
        yield child
        yield from _children(child)


def _unquoted(expression, code, path, seen):
    """Where `expression` (an argument of a command sink, in module `path`) interpolates data
    unquoted, following the functions of ours that build it (`code`: Code)."""
    if isinstance(expression, ast.Call) and _safe(expression):
        return []  # quoted as a whole
    found = []
    for node in [expression, *_children(expression)]:
        if isinstance(node, ast.JoinedStr):
            found += [
                ast.unparse(v.value)
                for v in node.values
                if isinstance(v, ast.FormattedValue) and not _safe(v.value)
            ]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "format":
            found.append(ast.unparse(node))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            found.append(ast.unparse(node)) if isinstance(node.left, ast.Constant) else None
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            target = code.resolve(path, node.func.id) if code else None
            if target and target not in seen:  # built by a function of ours: what it returns
                seen.add(target)
                for ret in ast.walk(target[1]):
                    if isinstance(ret, (ast.Return, ast.Yield)) and ret.value is not None:
                        found += _unquoted(ret.value, code, target[0], seen)
    return found


def test_shipped_scripts_quote_their_arguments():
    from pvefail2ban.operations import shipped_script

    hostile = "/etc/x:644:root'; touch /tmp/owned; echo '"
    command = shipped_script("monitoring-apply.sh", hostile).get_raw_value()
    assert command.endswith(" monitoring-apply.sh " + shlex.quote(hostile))


def test_no_command_interpolates_data_unquoted():
    """Every command the controller sends (server.shell, StringCommand, run_shell_command and the
    script runners, through the functions of ours that build them) quotes what it interpolates
    (QuoteString, shlex.quote), or interpolates constants only."""
    code, problems = Code(CONTROLLER), []
    assert len(CONTROLLER) > 15 and PACKAGE / "day2/deploys.py" in CONTROLLER
    for path in CONTROLLER:
        for node in ast.walk(code.trees[path]):
            if not isinstance(node, ast.Call):
                continue
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            if name not in SINKS:
                continue
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg != "name")]:
                problems += [
                    f"{path.name}:{node.lineno}: {u}" for u in _unquoted(arg, code, path, set())
                ]
    assert problems == []


def test_the_grep_finds_an_unquoted_interpolation(tmp_path):
    """The test above can fail: data in an f-string is found, also in a function of another
    module imported under another name."""
    tree = ast.parse('server.shell(commands=[f"fail2ban-client set {jail} banip {address}"])')
    call = tree.body[0].value
    assert _unquoted(call.keywords[0].value, None, None, set()) == ["jail", "address"]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/model.py").write_text('def removal(x):\n    return f"rm -rf {x}"\n')
    (tmp_path / "pkg/task.py").write_text(
        "from .model import removal as unshare\n\n"
        "def task(x):\n    server.shell(commands=[unshare(x)])\n"
    )
    code = Code([tmp_path / "pkg/model.py", tmp_path / "pkg/task.py"])
    call = next(
        n
        for n in ast.walk(code.trees[tmp_path / "pkg/task.py"])
        if getattr(n.func if isinstance(n, ast.Call) else None, "attr", "") == "shell"
    )
    assert _unquoted(call.keywords[0].value, code, tmp_path / "pkg/task.py", set()) == ["x"]


# ---- the receiver never shortens or lifts a ban ---------------------------------------------------

receive = script("receive")
nodelib = script("nodelib")


@QUICK
@given(
    st.integers(0, 10**10),
    st.booleans(),
    st.none() | st.tuples(st.integers(0, 10**10), st.floats(0, 10**10)),
    st.floats(0, 10**10),
)
def test_a_request_never_shortens_a_ban(end, banned_here, earlier, now):
    record = None
    if earlier is not None:
        record = nodelib.Received(earlier[0], "sshd", "192.0.2.7", "pve2", earlier[1], 600)
    what = receive.decide(end, banned_here, record, now)
    live = record is not None and (record.end == 0 or record.end > now)
    if not banned_here:
        assert what == "made"
    elif what == "extended":  # only a ban made here for a peer, and only to end later
        assert live and nodelib.later_end(end, record.end)
    else:
        assert what == "kept"


def test_a_ban_of_this_nodes_own_is_kept_as_it_is():
    assert receive.decide(1, True, None, 0.0) == "kept"  # `ban sshd X 1 0` to a week-long ban
    assert receive.decide(0, True, None, 0.0) == "kept"  # for ever at the origin: still its own
    ended = nodelib.Received(5, "sshd", "192.0.2.7", "pve2", 0.0, 600)  # a copy that ran out
    assert receive.decide(10, True, ended, 6.0) == "kept"  # banned again since: by this node


def test_requests_are_bounded_per_line_and_per_connection(monkeypatch):
    monkeypatch.setattr(receive, "MAX_REQUESTS", 3)
    answers = list(receive.serve("pve2", ["sshd"], [b"x\n"] * 10))
    assert len(answers) == 3 and all(a.startswith("refused malformed") for a in answers)
    long_line = b"ban sshd " + b"1" * 200
    assert list(receive.serve("pve2", ["sshd"], [long_line])) == ["refused request too long"]


# ---- the share daemon's records -------------------------------------------------------------------

share = script("share")


def test_a_copy_is_made_again_before_this_jails_ban_time_ends_only_where_the_origin_bans_longer():
    record = nodelib.Received(0, "sshd", "192.0.2.7", "pve2", 1000.0, 600)
    assert share.renewal(record, 1000.0) == 1540.0  # a minute before the 600 s run out
    assert share.renewal(record._replace(end=1500), 1000.0) is None  # lifted at 1500 instead
    assert share.renewal(record._replace(here=-1), 1000.0) is None  # bans for ever here
    assert share.renewal(record._replace(here=None), 1000.0) is None  # an older receiver's


@QUICK
@given(st.text(max_size=200))
def test_record_and_outbox_lines_are_parsed_or_skipped(line):
    record = nodelib.parse_received(line)
    assert record is None or (is_canonical(record.address) and nodelib.NAME.fullmatch(record.jail))
    entry = share.outbox_line(line)
    assert entry is None or is_canonical(entry[2] if entry[0] == "ban" else entry[1])
    assert all(is_canonical(a) for a in nodelib.parse_lifted([line]))


@QUICK
@given(st.sampled_from(["Found", "Ban", "Unban", "Restore Ban"]), HOSTILE, HOSTILE)
def test_fail2ban_log_lines_the_sender_reads_give_one_of_our_jails_and_an_address_or_nothing(
    kind, jail, text
):
    """Cluster-wide failures: the sender reads fail2ban's log, where attackers' text lands too."""
    source = "filter" if kind == "Found" else "actions"
    stamp = "2026-11-29 02:32:20"
    line = f"{stamp},175 fail2ban.{source} [1]: NOTICE  [{jail}] {kind} {text}"
    line += f" - {stamp}" if kind == "Found" else ""
    found = share.found_line(line, {"sshd"})
    assert found is None or (found[0] == "sshd" and is_canonical(found[1]))
    change = share.ban_line(line)
    assert change is None or (nodelib.NAME.fullmatch(change[1]) and is_canonical(change[2]))
    attempt = f"attempt {jail} {text} 1.5"
    try:
        parsed = receive.parse_attempt(attempt, ["sshd"])
    except ValueError:
        return
    assert parsed[0] == "sshd" and is_canonical(parsed[1]) and 0 <= parsed[2] < 1e10


def test_a_line_still_being_written_is_read_once_whole(tmp_path):
    path = tmp_path / "outbox"
    path.write_text("ban sshd 192.0.2.7 1000.0 600\nban sshd 192.0")
    tail = nodelib.Tail(str(path))
    assert tail.lines() == ["ban sshd 192.0.2.7 1000.0 600"]
    with open(path, "a") as out:
        out.write(".2.8 1000.0 600\n")
    assert tail.lines() == ["ban sshd 192.0.2.8 1000.0 600"]


def test_a_line_too_long_is_dropped_whole_never_its_tail_taken_for_a_line(tmp_path):
    """fail2ban logs attacker text at the end of some lines: the rest of a line dropped for its
    length must not be read as a line of its own (a forged `Found`)."""
    path = tmp_path / "fail2ban.log"
    forged = "2026-11-29 02:32:20,175 fail2ban.filter [1]: INFO    [sshd] Found 198.51.100.9 - x"
    path.write_text("a\n" + "x" * (nodelib.MAX_LINE + 10))
    tail = nodelib.Tail(str(path))
    assert tail.lines() == ["a"]
    with open(path, "a") as out:
        out.write(forged + "\nb\n")
    assert tail.lines() == ["b"]
    # started (or resumed) in the middle of a line: from the next whole one
    path.write_text("x" * 50 + forged + "\nc\n")
    resumed = nodelib.Tail(str(path))
    resumed.resume((path.stat().st_ino, 50))
    assert resumed.lines() == ["c"]
    at_start = nodelib.Tail(str(path))
    at_start.resume((path.stat().st_ino, path.stat().st_size - 2))  # "c\n" begins a line
    assert at_start.lines() == ["c"]


def test_a_restart_goes_on_where_the_outbox_was_read(tmp_path):
    path = tmp_path / "outbox"
    path.write_text("a\nb\n")
    first = nodelib.Tail(str(path))
    assert first.lines() == ["a", "b"]
    with open(path, "a") as out:
        out.write("c\n")
    again = nodelib.Tail(str(path))
    again.resume(first.position())
    assert again.lines() == ["c"]


def test_a_node_we_cannot_serve_under_a_connector_name_is_left_out_not_an_error():
    on = validate(dict(DEFAULTS))
    node = {"addresses": ["192.0.2.1"], "sshd_ports": ["22"], "hostkeys": [ssh_key(1)]}
    nodes = [
        ("pve1", "192.0.2.1", on, {**node, "share_key": ssh_key("K1"), "share_peers": []}),
        ("pve2", "192.0.2.2", on, {**node, "share_key": ssh_key("K2"), "share_peers": []}),
        ("@docker/abc", "@docker/abc", on, None),
    ]
    assert [m.name for m in members(nodes)] == ["pve1", "pve2"]


class Refusing:
    """fail2ban's socket as the share daemon asks it, where a jail was switched off since: it
    refuses that jail (as fail2ban answers UnknownJailException) and takes the others."""

    lifted = []

    def ask(self, *command):
        if command[1] != "sshd":
            raise RuntimeError(f"UnknownJailException('{command[1]}')")
        if command[2] == "unbanip":
            Refusing.lifted.extend(command[3:])
        return 1

    def close(self):
        pass


def test_a_jail_gone_since_never_holds_back_the_others(tmp_path, monkeypatch):
    for name in ("OUTBOX", "PENDING", "RECEIVED", "LIFTED"):
        monkeypatch.setattr(share, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(share, "log", lambda message: None)
    daemon, now = share.Share({"peers": []}, fail2ban=Refusing), time.time()
    daemon.take_received(
        [
            nodelib.received_line(
                nodelib.Received(int(now) - 5, jail, "192.0.2.7", "pve2", now - 100, 600)
            )
            for jail in ("proxmox", "sshd")
        ]
    )
    daemon.maintain(now)
    assert Refusing.lifted == ["192.0.2.7"] and daemon.received == {} and daemon.retry_at == 0.0


def test_a_peer_that_closes_its_end_is_a_connection_that_ended():
    """A peer whose ssh lives on but closed its output: read as the end (select would wake on the
    closed pipe at once, for ever)."""
    peer = share.Peer("pve2", "192.0.2.2", 22)
    peer.command = lambda: ["sh", "-c", "exec >&-; sleep 5"]
    peer.connect(time.time())
    try:
        ready, _, _ = select.select([peer.proc.stdout], [], [], 5)
        assert ready and peer.answers(time.time()) is False
    finally:
        peer.close(time.time(), failed=True)


@QUICK
@given(
    st.sampled_from(["os", "sshd", "journald", "units", "logs", "files", "hostkeys", "releases"]),
    st.none() | st.integers() | HOSTILE,
)
def test_a_value_of_the_wrong_kind_fails_that_node_alone(key, value):
    from pvefail2ban.facts import NodeFacts

    with pytest.raises(FactProcessError):
        NodeFacts().process([node_said(**{key: value})])


def test_a_deeply_nested_answer_fails_that_node_alone():
    from pvefail2ban.day2.model import Fail2banState
    from pvefail2ban.facts import NodeFacts

    for fact in (NodeFacts(), Fail2banState()):
        with pytest.raises(FactProcessError):
            fact.process(["[" * 200_000])


def test_a_reader_of_the_received_records_never_keeps_a_stale_view_after_compaction(
    tmp_path, monkeypatch
):
    """Compaction puts a new file in place (under the old one's lock): a receiver's connection
    whose offset lay in the old file reads the new one whole, drops what was dropped and sees
    what is live. (Rewritten in place, an offset past the old records pointed into the new.)"""
    path = str(tmp_path / "received")
    for module in (share, receive):
        monkeypatch.setattr(module, "RECEIVED", path)
    for name in ("OUTBOX", "PENDING", "LIFTED"):
        monkeypatch.setattr(share, name, str(tmp_path / name.lower()))
    monkeypatch.setattr(share, "log", lambda message: None)
    now = time.time()

    def record(n):
        return nodelib.Received(int(now) + 600, "sshd", f"192.0.2.{n}", "pve2", now - n, 600)

    with open(path, "w") as out:
        out.writelines(nodelib.received_line(record(n)) for n in (1, 2))
    reader = receive.Records()  # a connection that read the file when it held two records
    with receive.locked_received() as file:
        reader.refresh(file)
    with open(path, "a") as out:  # other connections' since
        out.writelines(nodelib.received_line(record(n)) for n in range(3, 11))
    daemon = share.Share({"peers": []}, fail2ban=Refusing)
    daemon.take_received(daemon.inbox.lines())
    daemon.drop_received(lambda key: key[1] in ("192.0.2.1", "192.0.2.2"))  # lifted meanwhile
    daemon.compact_received(force=True)  # eight records: longer than the reader's offset
    with receive.locked_received() as file:  # a new ban recorded by another connection
        file.write(nodelib.received_line(record(11)).encode())
    with receive.locked_received() as file:
        reader.refresh(file)
    assert sorted(reader.by_key) == sorted(("sshd", f"192.0.2.{n}") for n in range(3, 12))
    assert reader.count("pve2") == 9


NAMES = st.from_regex(r"[A-Za-z0-9_.-]{1,32}", fullmatch=True)  # nodelib.JAIL


@given(jails=st.lists(NAMES, max_size=20), off=st.lists(NAMES, max_size=5))
def test_the_record_of_our_jails_reads_back_what_was_written(jails, off):
    from pvefail2ban.scripts.nodelib import expected_text, parse_expected

    assert parse_expected(expected_text(jails, off)) == {"jails": sorted(jails), "off": sorted(off)}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.text(max_size=300), st.recursive(st.none() | st.text(), st.lists, max_leaves=20))
)
def test_a_hostile_record_of_jails_is_refused_or_gives_only_jail_names(value):
    from pvefail2ban.scripts.nodelib import JAIL_NAME, parse_expected

    text = value if isinstance(value, str) else json.dumps({"jails": value, "off": []})
    try:
        record = parse_expected(text)
    except ValueError as error:
        assert "record of our jails" in str(error)
        return
    assert all(JAIL_NAME.fullmatch(name) for key in ("jails", "off") for name in record[key])
