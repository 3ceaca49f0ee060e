"""What the deploy reads on a node, printed as one JSON document: the controller parses it into
typed, checked values (pvefail2ban.facts, pvefail2ban.jailstatus). One Python process: every
process a run starts costs CPU on every node on every run, so this one reads files itself, asks
fail2ban's socket itself, and starts a tool only for what only that tool can tell (systemctl,
sshd -T, ip, dpkg-query, journalctl, the firewall, fail2ban's configuration test).

    probe.py facts CONFIG      everything the deploy adapts to, and the check as read now
    probe.py check CONFIG      the check, every run (the deploy's last step)

CONFIG is a JSON object the controller writes (facts.probe_config, operations.verified): the units,
files, logs and packages to look at, and the check's jails, tool and the failure lines of each jail.

The check in `facts` only reads: it waits for nothing, tests nothing and writes nothing; the tool is
the one banaction auto picks, the jails every jail that runs, and what only a test could tell is
said to be unknown (config "untested", "unchecked" jails): the deploy then checks for real. In
`check` mode it waits (bounded) for fail2ban and each of our jails and their firewall rules after a
(re)start, runs fail2ban-regex on failure lines not checked before under the same configuration, and
re-tests the configuration (`fail2ban-client -t`, `-d`) only when its content changed since the last
test that passed.

Standard library only, nodelib's text in front (facts.bundled).
"""

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time

# nodelib's text is put in front of this one by the controller (facts.bundled)
from nodelib import FAIL2BAN_LOG, STATE_DIR, Fail2ban, jail_names, jail_status, read_tail

STATE = STATE_DIR
CONFIG = "/etc/fail2ban"
INSTALLED = "/var/lib/dpkg/info/fail2ban.list"  # rewritten by every install or upgrade of fail2ban
LOG = FAIL2BAN_LOG
UNIT_FIELDS = {"LoadState": "load", "ActiveState": "active", "UnitFileState": "enabled"}


def run(*argv, stdin=None, timeout=None):
    """(exit code, stdout, stderr) of a tool; 127 when it is not there, 124 when it ran out of
    `timeout` seconds (as timeout(1) says it)."""
    try:
        # errors="replace": log lines carry what attackers send (user names), valid UTF-8 or not
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, errors="replace", timeout=timeout
        )
    except OSError as error:
        return 127, "", str(error)
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer within {timeout} s"
    return done.returncode, done.stdout, done.stderr


def found(command):
    """`command -v` (shutil.which costs 14 ms of imports per run: measured)."""
    path = os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"
    return any(os.access(os.path.join(d, command), os.X_OK) for d in path.split(":"))


def read(path, limit=1 << 20):
    """The text of a small file ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace")
    except OSError:
        return ""


# ---- facts --------------------------------------------------------------------------------------


def os_release():
    values = {}
    for line in read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("\"'")
    return {
        k: values.get(v) or None
        for k, v in (("id", "ID"), ("like", "ID_LIKE"), ("version", "VERSION_ID"))
    }


def units(names):
    """{unit: {load, active, enabled, pid}} of each unit, in one systemctl call."""
    fields = ["-p", "Id", "-p", "MainPID", *(a for f in UNIT_FIELDS for a in ("-p", f))]
    _, out, _ = run("systemctl", "show", *fields, *names)
    states = {}
    for block in out.split("\n\n"):
        values = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
        if values.get("Id") in names:
            state = {UNIT_FIELDS[k]: values.get(k, "") for k in UNIT_FIELDS}
            state["pid"] = int(values["MainPID"]) if values.get("MainPID", "").isdigit() else 0
            states[values["Id"]] = state
    return states


def rsyslog_writes(logs):
    """The logs of `logs` that a rule of rsyslog's configuration writes (a removed rule leaves a
    stale file behind)."""
    text = read("/etc/rsyslog.conf") + "\n"
    try:
        names = sorted(os.listdir("/etc/rsyslog.d"))
    except OSError:
        names = []
    text += "\n".join(read(f"/etc/rsyslog.d/{n}") for n in names if n.endswith(".conf"))
    rules = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [
        log
        for log in logs
        if any(re.search(rf"\s-?{re.escape(log)}(\s|$)", " " + line) for line in rules)
    ]


def journald():
    """journald's effective Storage= and MaxLevelStore= (drop-ins included, the last one wins)."""
    _, out, _ = run("systemd-analyze", "cat-config", "systemd/journald.conf")
    found_ = {"storage": None, "maxlevelstore": None}
    for line in out.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip().lower() in found_:
            found_[key.strip().lower()] = value.strip().lower()
    return found_


def sshd():
    """sshd's effective ports, MaxAuthTries, LogLevel and PermitRootLogin (`sshd -T`)."""
    _, out, _ = run("sshd", "-T")
    found_ = {"ports": [], "maxauthtries": None, "loglevel": None, "permitrootlogin": None}
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        key = key.lower()
        if key == "port":
            found_["ports"].append(value.strip())
        elif key in found_:
            found_[key] = value.strip()
    return found_


def addresses():
    """This node's global addresses, as `ip` lists them (IPv4 and IPv6)."""
    _, out, _ = run("ip", "-j", "addr", "show", "scope", "global")
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return []
    return [a.get("local") for link in links for a in link.get("addr_info", []) if a.get("local")]


def packages(names):
    """{package: version} of the packages of `names` that are installed."""
    _, out, _ = run("dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev} ${Version}\n", *names)
    found_ = {}
    for line in out.splitlines():
        name, status, version = (line.split() + ["", "", ""])[:3]
        if status == "ii":
            found_[name] = version
    return found_


def files(paths):
    """{path: [sha1, mode, owner]} of the files of `paths` that exist."""
    import grp
    import pwd

    found_ = {}
    for path in paths:
        try:
            info = os.stat(path)
            with open(path, "rb") as f:
                sha1 = hashlib.sha1(f.read()).hexdigest()
        except OSError:
            continue
        try:
            owner = f"{pwd.getpwuid(info.st_uid).pw_name}:{grp.getgrgid(info.st_gid).gr_name}"
        except KeyError:
            owner = f"{info.st_uid}:{info.st_gid}"
        found_[path] = [sha1, f"{info.st_mode & 0o7777:o}", owner]
    return found_


def public_key(path):
    """The first two fields of a public key file ("type base64"), or None."""
    fields = read(path, 64 << 10).split()
    return " ".join(fields[:2]) if len(fields) >= 2 else None


def textfile_dir(defaults_file):
    """node_exporter's textfile directory as its ARGS name it, or None."""
    for line in read(defaults_file).splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = re.search(r"--collector\.textfile\.directory[= ][\"']?([^\"' ]+)", line)
        if match:
            return match.group(1)
    return None


def apt_lists_age(now):
    """Seconds since the apt lists were refreshed (their last refresh or apt's periodic stamp);
    None when there are no lists at all."""
    try:
        if not any(n.endswith("_Packages") for n in os.listdir("/var/lib/apt/lists")):
            return None
    except OSError:
        return None
    times = []
    for path in ("/var/lib/apt/lists/partial", "/var/lib/apt/periodic/update-success-stamp"):
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            pass
    return int(now - max(times or [0]))


def release(changelog):
    """{version, date} of the release a Debian changelog's first entry names, or None."""
    import gzip  # here: only on nodes that run a product whose release matters

    try:
        with gzip.open(changelog, "rt", errors="replace") as text:
            lines = [line for _, line in zip(range(2000), text, strict=False)]
    except OSError:
        return None
    head = re.match(r"\S+ \(([^)]*)\)", lines[0]) if lines else None
    date = next(
        (re.sub(r"^ -- .*>\s+", "", line).strip() for line in lines if line.startswith(" -- ")),
        None,
    )
    return {"version": head.group(1) if head else None, "date": date}


# pveproxy reads /etc/default/pveproxy by sourcing it with bash (PVE::APIServer::Utils::
# read_proxy_config): its values are read the same way, never parsed here, so that no shell trick
# (an `unset`, a `readonly`, a space after `=`) makes them differ from what pveproxy takes
REAL_IP_VALUES = '. "$1" >/dev/null 2>&1 </dev/null; printf "%s\\0%s" "${PROXY_REAL_IP_HEADER-}" "${PROXY_REAL_IP_ALLOW_FROM-}"'


def access_defaults(paths):
    """{product: {"text", "header", "allow_from"}} of each web proxy settings file (pveproxy's)."""
    found = {}
    for key, path in paths.items():
        header = allow = ""
        if os.path.isfile(path):
            _, out, _ = run("bash", "-c", REAL_IP_VALUES, "bash", path, timeout=10)
            # no NUL: bash did not get to its printf (not there, too slow, the file exits): unknown,
            # no jail trusts it
            header, allow = out.split("\0", 1) if "\0" in out else ("?", "")
        try:  # the text, to rewrite for fail2ban_trusted_proxies: whole and UTF-8, or none
            with open(path, "rb") as file:
                raw = file.read((64 << 10) + 1)
            text = raw.decode() if len(raw) <= 64 << 10 else None
        except (OSError, UnicodeDecodeError):
            text = None if os.path.exists(path) else ""
        found[key] = {"text": text, "header": header[:256], "allow_from": allow[:4096]}
    return found


def proxies(config, state):
    """The configuration text of each reverse proxy whose unit runs ({key: text}), and what
    listens where (`ss -Hltnp`'s lines) when one does: the controller parses both."""
    texts = {}
    for key, how in config.items():
        if state.get(how["unit"], {}).get("active") != "active":
            continue
        text = ""
        for pattern in how["configs"]:
            for path in sorted(glob.glob(pattern)):
                if os.path.isfile(path) and len(text) < 256 << 10:
                    text += read(path, 256 << 10) + "\n"
        texts[key] = text[: 256 << 10]
    if not texts:
        return {}
    return {"proxies": texts, "listening": run("ss", "-Hltnp")[1].splitlines()[:4096]}


def facts(config):
    now = time.time()
    state = units(config["units"])
    logs = [log for log in config["logs"] if os.path.isfile(log)]
    rsyslog = state.get("rsyslog.service", {}).get("active") == "active"
    return {
        "python3": True,
        "os": os_release(),
        "systemd": os.path.isdir("/run/systemd/system"),
        "journal": found("journalctl"),
        "logs": logs,
        "logs_written": rsyslog_writes(logs) if rsyslog else [],
        "journald": journald(),
        "units": state,
        "tools": [tool for tool in ("nft", "iptables") if found(tool)],
        "sshd": sshd(),
        "client": (os.environ.get("SSH_CLIENT") or "").split(" ")[0] or None,
        "addresses": addresses(),
        "packages": packages(config["packages"]),
        "packaged_filters": [
            name
            for name in read(INSTALLED).splitlines()
            if name.startswith("/etc/fail2ban/filter.d/")
            and os.path.basename(name) in config["filters"]
        ],
        "files": files(config["files"]),
        "releases": {
            key: release(path) for key, path in config["changelogs"].items() if os.path.exists(path)
        },
        "share_key": public_key(config["share_key"]),
        "hostkeys": [
            public_key(f"/etc/ssh/{n}")
            for n in sorted(os.listdir("/etc/ssh"))
            if re.fullmatch(r"ssh_host_\w+_key\.pub", n)
        ],
        "share_peers": read(config["share_peers"]) or None,
        "authorized": [
            line
            for line in read("/root/.ssh/authorized_keys", 4 << 20).splitlines()
            if config["mark"] in line
        ],
        "textfile_dir": textfile_dir(config["exporter_defaults"]),
        "sendmail": os.access("/usr/sbin/sendmail", os.X_OK),
        **proxies(config["proxies"], state),
        # the products' web proxy settings that choose the address their access log names
        "access_defaults": access_defaults(config.get("access_defaults", {})),
        "apt_lists_age": apt_lists_age(now),
    }


# ---- the check ----------------------------------------------------------------------------------


def connected(timeout):
    """fail2ban's socket once it answers ping, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server = Fail2ban()
            server.ask("ping")
            return server
        except Exception:  # noqa: BLE001 - no socket yet, refused, starting: ask again
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.25)


def source_of(jail):
    """A jail's source from its status (jail_status): ("journal", match words) or ("files", paths),
    else None."""
    if jail.get("journal_matches"):
        return "journal", jail["journal_matches"].split()
    if jail.get("file_list"):
        return "files", jail["file_list"]
    return None


def statuses(server, ours, timeout):
    """([every jail that runs], {jail: jail_status} of each, our jails), once each of our jails
    runs with a source (bounded). `ours` ["*"]: every jail that runs."""
    deadline = time.monotonic() + timeout
    while True:
        names = jail_names(server.ask("status"))
        wanted = names if ours == ["*"] else ours
        jails = {}
        for jail in names:
            try:
                jails[jail] = jail_status(server.ask("status", jail))
            except Exception:  # noqa: BLE001 - the jail went away between the two questions
                continue
        settled = all(jail in jails and source_of(jails[jail]) for jail in wanted)
        if settled or time.monotonic() > deadline:
            return names, jails, wanted
        time.sleep(0.25)  # the jails are still being added: what is missing after this is reported


def firewall(tool):
    """("ok" or the tool's own error, the jails whose ban rules are in place): each jail's action
    makes its rules at the jail's start. One listing of fail2ban's rules shows both where it works."""
    if tool == "nft":
        code, out, _ = run("nft", "list", "chain", "inet", "f2b-table", "f2b-chain")
        if code == 0:
            return "ok", set(re.findall(r"@addr-set-(\S+) ", out))
        code, _, err = run("nft", "list", "tables")  # no chain yet, or no working nft at all?
    else:
        code, out, err = run("iptables", "-w", "-S")
        if code == 0:
            chains = set(re.findall(r"^-N f2b-(\S+)$", out, re.M))
            return "ok", chains & set(re.findall(r"-j f2b-(\S+)$", out, re.M))
    return "ok" if code == 0 else (err.strip().splitlines() or ["failed"])[0], set()


def action_errors(jails):
    """{jail: fail2ban's last error line about its action since fail2ban's last start}."""
    text = "\n".join(read_tail(LOG, 4 << 20))  # its last 4 MB: an attacker's flood costs no more
    text = text[text.rfind("Starting Fail2ban") :] if "Starting Fail2ban" in text else text
    errors = {}
    for jail in jails:
        pattern = re.compile(
            rf"ERROR .*(jail '{re.escape(jail)}' action|Jail\('{re.escape(jail)}'\))"
        )
        lines = [line for line in text.splitlines() if pattern.search(line)]
        if lines:
            errors[jail] = lines[-1]
    return errors


def content():
    """sha1 of every file under /etc/fail2ban (path and bytes) and of the installed fail2ban."""
    digest = hashlib.sha1()
    for top, dirs, names in os.walk(CONFIG):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            try:
                with open(path, "rb") as f:
                    digest.update(path.encode() + b"\0" + hashlib.sha1(f.read()).digest())
            except OSError:
                digest.update(path.encode() + b"\0unreadable")
    try:
        installed = os.stat(INSTALLED)
        digest.update(f"{installed.st_mtime_ns} {installed.st_size}".encode())
    except OSError:
        pass
    return digest.hexdigest()


# a failure a daemon logged from loopback (its rhost=, or an access log's first field): its client
# was a proxy on the node (never banned); the detection canary's own address (127.0.0.254) is none
# (the daemon's own `failure; rhost=`, not a user name that reads like one)
FROM_LOOPBACK = re.compile(
    r"(?:failure; rhost=\[?|^)(?:::ffff:)?(?:127\.(?!0\.0\.254\b)[0-9.]+|::1)\b"
)
CLIENT = re.compile(r"(?:failure; rhost=\[?|^)(?:::ffff:)?([0-9A-Fa-f.:]{2,45})")  # its address


PVEPROXY_DEFAULTS = "/etc/default/pveproxy"  # PROXY_REAL_IP_*: what pveproxy's log names
ACCESS_TIME = re.compile(r"^\S+ - \S+ \[(\d\d/\d\d/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")


def logged_before(line, when):
    """True when an access log line (pveproxy's format) was written before `when` (epoch)."""
    found = ACCESS_TIME.search(line)
    if not found or when is None:
        return False
    import datetime  # here: only where proxies are named

    try:
        stamp = datetime.datetime.strptime(found.group(1), "%d/%m/%Y:%H:%M:%S %z")
    except ValueError:
        return False
    return stamp.timestamp() < when


def from_proxy(line, networks):
    """True when a failure line names loopback or one of fail2ban_trusted_proxies (`networks`):
    its client is a proxy, never banned."""
    if FROM_LOOPBACK.search(line):
        return True
    found = CLIENT.search(line) if networks else None
    if not found:
        return False
    import ipaddress  # here: only where proxies are named

    try:
        address = ipaddress.ip_address(found.group(1).rstrip(":"))
    except ValueError:
        return False
    return any(address in network for network in networks)


def seen(jail, source, failure, config, test=True, filter_=None, proxies=()):
    """[failure lines in the last lines of `source`, of them found by the jail's filter, of them
    from loopback (FROM_LOOPBACK)]; [0, 0, 0] when there are none; None when the source is empty;
    "unchecked" when they were not checked before and `test` is off."""
    kind, where = source
    if kind == "journal":
        _, out, _ = run("journalctl", "-q", "-o", "short", "--no-pager", "-n", "100", *where)
        lines = out.splitlines()
    else:
        lines = [line for path in where for line in read_tail(path, 100 << 10)[-100:]]
    if not any(line.strip() for line in lines):
        return None
    failures = [line for line in lines if re.search(failure, line)]
    if proxies:
        import ipaddress

        proxies = [ipaddress.ip_network(p) for p in proxies]
        try:  # lines pveproxy wrote before its real-IP settings name the proxy: no evidence
            since = os.path.getmtime(PVEPROXY_DEFAULTS)
            failures = [line for line in failures if not logged_before(line, since)]
        except OSError:
            pass
    if not failures:
        return [0, 0, 0]
    loopback = sum(1 for line in failures if from_proxy(line, proxies))
    key = hashlib.sha1("\n".join([config, *failures]).encode()).hexdigest()
    record = os.path.join(STATE, f"seen-{jail}")
    known, _, counts = read(record).strip().partition(" ")
    if known == key and len(counts.split()) == 2:
        return [*(int(n) for n in counts.split()), loopback]
    if not test:
        return "unchecked"
    import tempfile  # here: only where fail2ban-regex runs

    with tempfile.NamedTemporaryFile("w", suffix=".log") as sample:
        sample.write("\n".join(failures) + "\n")
        sample.flush()
        _, out, _ = run("fail2ban-regex", sample.name, filter_ or jail)
    match = re.search(r"^Lines: .*, (\d+) matched", out, re.M)
    counts = [len(failures), int(match.group(1)) if match else 0]
    os.makedirs(STATE, exist_ok=True)
    with open(record, "w") as f:
        f.write(f"{key} {counts[0]} {counts[1]}\n")
    return [*counts, loopback]


def bad_ignoreip(dump):
    """What `fail2ban-client -d` shows that `-t` lets through but kills fail2ban-server at its
    start: an ignoreip entry that is neither an address, a network nor a host name (seen:
    `@docker/abc`)."""
    import ast
    import ipaddress

    hostname = re.compile(
        r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    )
    bad = []
    for line in dump.splitlines():
        if "'addignoreip'" not in line:
            continue
        command = ast.literal_eval(line.strip())
        for entry in command[3:]:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not hostname.fullmatch(entry):
                    bad.append(
                        f"jail {command[1]}: ignoreip entry {entry!r} is no address, CIDR or host name"
                    )
    return bad


def config_test(config, test=True):
    """{state: tested | unchanged | untested | broken, when, errors}."""
    tested = os.path.join(STATE, "config-tested")
    known, _, when = read(tested).strip().partition(" ")
    if known == config:
        return {"state": "unchanged", "when": when, "errors": []}
    if not test:
        return {"state": "untested", "when": None, "errors": []}
    code, out, err = run("fail2ban-client", "-t")
    if code != 0:
        lines = [line for line in (out + err).splitlines() if "WARNING" not in line]
        return {"state": "broken", "when": None, "errors": lines[-5:]}
    _, dump, _ = run("fail2ban-client", "-d")
    bad = bad_ignoreip(dump)
    if bad:
        return {
            "state": "broken",
            "when": None,
            "errors": ["fail2ban would fail at start: " + "; ".join(bad)],
        }
    os.makedirs(STATE, exist_ok=True)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(tested, "w") as f:
        f.write(f"{config} {when}\n")
    return {"state": "tested", "when": when, "errors": []}


def check(config, test):
    """The check as a dict (its shape: jailstatus.check_result). `test`: wait, test and record
    (`check` mode); else only read (`facts` mode)."""
    timeout, tool, ours = config["ping_timeout"], config["tool"], config["jails"]
    result = {"tool": tool}
    if config.get("daemons"):  # our daemons that must run (cluster-wide bans; events)
        _, out, _ = run("systemctl", "is-active", *config["daemons"])
        states = out.split() + ["unknown"] * len(config["daemons"])
        result["daemons"] = dict(zip(config["daemons"], states, strict=False))
    if tool == "auto":  # as banaction auto: nftables where nft is, or where iptables is not either
        tool = result["tool"] = "nft" if found("nft") or not found("iptables") else "iptables"
    server = connected(timeout)
    if server is None:
        _, out, err = run("systemctl", "status", "--no-pager", "-n", "5", "fail2ban")
        return {**result, "ping": False, "service": (out + err).splitlines()[-10:]}
    names, jails, ours = statuses(server, ours, timeout)
    result.update(ping=True, version=str(server.ask("version")), names=names, jails=jails)
    server.close()
    # Each jail's action makes its rules in the jail's own thread, just after the jail starts:
    # right after a (re)start they may take a moment. Wait for them (ping_timeout in all), unless
    # the action failed.
    deadline = time.monotonic() + timeout
    while True:
        works, in_place = firewall(tool)
        missing = [jail for jail in ours if jail not in in_place]
        errors = action_errors(missing) if missing else {}  # fail2ban's log is read only then
        if (
            not missing
            or works != "ok"
            or time.monotonic() > deadline
            or all(j in errors for j in missing)
        ):
            break
        time.sleep(0.25)
    result.update(
        firewall=works, rules={jail: jail not in missing for jail in ours}, action_errors=errors
    )
    state, seen_ = content(), {}
    for jail in ours:
        source = source_of(jails.get(jail, {}))
        if jail in config["failures"] and source is not None:
            failure, filter_ = config["failures"][jail]
            seen_[jail] = seen(
                jail, source, failure, state, test, filter_, config.get("proxies") or ()
            )
    result.update(seen=seen_, config=config_test(state, test))
    return result


def main(command, config):
    if command == "ignoreip":  # apply.sh: `fail2ban-client -d` of the staged configuration
        bad = bad_ignoreip(sys.stdin.read())
        if bad:
            print("fail2ban would fail at start: " + "; ".join(bad))
            sys.exit(1)
        return
    if command == "facts":
        out = facts(config)
        try:  # the check as read now: where it cannot be read, the deploy checks live
            out["check"] = check({**config["check"], "ping_timeout": 0}, test=False)
        except Exception as error:  # noqa: BLE001 - a fact that fails would fail the node
            out["check"] = None
            out["check_error"] = repr(error)[:300]
    else:
        out = check(config, test=True)
    json.dump(out, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
