"""Read-only check of a node's fail2ban, every run (pvefail2ban.operations.verified parses what it
prints). One Python process: every process a check starts costs CPU on every node on every run, so
this one asks fail2ban's socket itself and reads files itself, and starts a tool only for what only
that tool can tell (systemctl, the firewall, journalctl, fail2ban's configuration test).

    verify.py check PING_TIMEOUT BANACTION_TOOL IGNOREIP_CHECK_PY "DAEMON..."|- OUR_JAIL...
    verify.py read 0 auto - - '*'

`check` (the deploy's last step) waits, tests and records as below. `read` (with the facts, before
any change) only reads: it waits for nothing, tests nothing and writes nothing; the tool is the one
banaction auto picks (`tool=...`), the jails every jail that runs, and what only a test could tell
is said to be unknown (`config=untested`, `unchecked JAIL`): the deploy then checks for real.

- `daemon NAME=STATE`: our daemons that must run (cluster-wide bans; metrics and notifications);
- `ping=yes`, fail2ban's version and every jail's status, ours or not, as `fail2ban-client -i`
  prints them (after "fail2ban> "), once fail2ban answers and, right after a (re)start, each of our
  jails runs with its source (fail2ban answers ping before it has added every jail); or `ping=no`
  and `systemctl status` lines when it does not answer within PING_TIMEOUT seconds;
- `firewall=ok` (the ban action's tool works) and, for each of our jails, `rules JAIL=ok|missing`
  (the rules its action makes when the jail starts) and fail2ban's own error line about its action;
- `source JAIL=empty`, or `seen JAIL LINES FOUND`: the failure lines among the last lines of the
  jail's source (its journal match or log files) and how many of them its filter finds
  (fail2ban-regex, run only for failure lines not checked before under the same configuration);
- `config=tested|unchanged <time>|broken` (+ `config:` lines): `fail2ban-client -t` and `-d` parse
  every file twice, so the configuration is re-tested only when its content (every file under
  /etc/fail2ban, and the installed fail2ban) differs from the last one that passed.
"""

import hashlib
import os
import re
import subprocess
import sys
import time

# nodelib's text is put in front of this one by the controller (facts.bundled)
from nodelib import Fail2ban, read_tail

STATE = "/var/lib/pve-fail2ban"
CONFIG = "/etc/fail2ban"
INSTALLED = "/var/lib/dpkg/info/fail2ban.list"  # rewritten by every install or upgrade of fail2ban
LOG = "/var/log/fail2ban.log"
FAILURES = {  # the lines of each of our jails' daemon that are login failures
    "sshd": "Failed password for|Invalid user",
    "proxmox": "authentication (verification )?failure; rhost=[0-9A-Fa-f:.]",
    "pmg": "authentication (verification )?failure; rhost=[0-9A-Fa-f:.]",
    "pbs": r"authentication failure; rhost=\[?[0-9A-Fa-f:.]",
}


def beautify(command, answer):
    """What `fail2ban-client` prints for `status` and `status JAIL` (client/beautifier.py)."""

    def value(v):
        return " ".join(map(str, v)) if isinstance(v, list) else v

    if len(command) == 1:
        lines = ["Status"] + [
            f"{'`-' if n == len(answer) - 1 else '|-'} {label}:\t{value(v)}"
            for n, (label, v) in enumerate(answer)
        ]
        return "\n".join(lines)
    lines = [f"Status for the jail: {command[1]}"]
    for n, (section, items) in enumerate(answer):
        last = n == len(answer) - 1
        lines.append(f"{'`-' if last else '|-'} {section}")
        indent = "   " if last else "|  "
        for m, (label, v) in enumerate(items):
            lines.append(f"{indent}{'`-' if m == len(items) - 1 else '|-'} {label}:\t{value(v)}")
    return "\n".join(lines)


def run(*argv, stdin=None):
    """(exit code, stdout, stderr) of a tool; 127 when it is not there."""
    try:
        # errors="replace": log lines carry what attackers send (user names), valid UTF-8 or not
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, errors="replace")
    except OSError as error:
        return 127, "", str(error)
    return done.returncode, done.stdout, done.stderr


def found(command):
    """`command -v` (shutil.which costs 14 ms of imports per run: measured)."""
    path = os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"
    return any(os.access(os.path.join(d, command), os.X_OK) for d in path.split(":"))


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


def source_of(status):
    """A jail's source from its status: ("journal", match words) or ("files", paths), else None."""
    for _, items in status:
        for label, v in items:
            if label == "Journal matches" and v:
                return "journal", (" ".join(v) if isinstance(v, list) else v).split()
            if label == "File list" and v:
                return "files", v if isinstance(v, list) else v.split()
    return None


def statuses(server, ours, timeout):
    """(fail2ban's `status` answer, {jail: its `status JAIL` answer} of every jail, our jails),
    once each of our jails runs with a source (bounded). `ours` ["*"]: every jail that runs."""
    deadline = time.monotonic() + timeout
    while True:
        overall = server.ask("status")
        jails = [j.strip() for j in dict(overall).get("Jail list", "").split(",") if j.strip()]
        wanted = jails if ours == ["*"] else ours
        answers = {}
        for jail in jails:
            try:
                answers[jail] = server.ask("status", jail)
            except Exception:  # noqa: BLE001 - the jail went away between the two questions
                continue
        settled = all(jail in answers and source_of(answers[jail]) for jail in wanted)
        if settled or time.monotonic() > deadline:
            return overall, answers, wanted
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
    if not text:
        return {}
    text = text[text.rfind("Starting Fail2ban") :] if "Starting Fail2ban" in text else text
    found = {}
    for jail in jails:
        pattern = re.compile(
            rf"ERROR .*(jail '{re.escape(jail)}' action|Jail\('{re.escape(jail)}'\))"
        )
        lines = [line for line in text.splitlines() if pattern.search(line)]
        if lines:
            found[jail] = lines[-1]
    return found


def last_lines(path, count=100):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 1024 * count))  # lines of up to 1 KB: as `tail -n 100`
            return f.read().decode(errors="replace").splitlines()[-count:]
    except OSError:
        return []


def content():
    """sha1 of every file under /etc/fail2ban (path and bytes) and of the installed fail2ban."""
    digest = hashlib.sha1()
    for top, dirs, files in os.walk(CONFIG):
        dirs.sort()
        for name in sorted(files):
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


def seen(jail, source, config, test=True):
    """The failure lines in the last lines of `source` and how many of them the jail's filter finds
    ("LINES FOUND"), "" when there are none, None when the source is empty; "?" when they were not
    checked before and `test` is off."""
    kind, where = source
    if kind == "journal":
        _, out, _ = run("journalctl", "-q", "-o", "short", "--no-pager", "-n", "100", *where)
        lines = out.splitlines()
    else:
        lines = [line for path in where for line in last_lines(path)]
    if not any(line.strip() for line in lines):
        return None
    failures = [line for line in lines if re.search(FAILURES[jail], line)]
    if not failures:
        return ""
    key = hashlib.sha1("\n".join([config, *failures]).encode()).hexdigest()
    record = os.path.join(STATE, f"seen-{jail}")
    try:
        with open(record) as f:
            known, _, counts = f.read().strip().partition(" ")
        if known == key:
            return counts
    except OSError:
        pass
    if not test:
        return "?"
    import tempfile  # here: only where fail2ban-regex runs

    with tempfile.NamedTemporaryFile("w", suffix=".log") as sample:
        sample.write("\n".join(failures) + "\n")
        sample.flush()
        _, out, _ = run("fail2ban-regex", sample.name, jail)
    match = re.search(r"^Lines: .*, (\d+) matched", out, re.M)
    counts = f"{len(failures)} {match.group(1) if match else 0}"
    os.makedirs(STATE, exist_ok=True)
    with open(record, "w") as f:
        f.write(f"{key} {counts}\n")
    return counts


def config_test(config, ignoreip_check, test=True):
    """The `config=...` line and its `config:` lines (`config=untested` when `test` is off)."""
    tested = os.path.join(STATE, "config-tested")
    try:
        with open(tested) as f:
            known, _, when = f.read().strip().partition(" ")
        if known == config:
            return [f"config=unchanged {when}"]
    except OSError:
        pass
    if not test:
        return ["config=untested"]
    code, out, err = run("fail2ban-client", "-t")
    if code != 0:
        lines = [line for line in (out + err).splitlines() if "WARNING" not in line]
        return ["config=broken"] + [f"config: {line}" for line in lines[-5:]]
    _, dump, _ = run("fail2ban-client", "-d")
    code, out, err = run("python3", "-c", ignoreip_check, stdin=dump)
    if code != 0:
        return ["config=broken"] + [f"config: {line}" for line in (out + err).splitlines()]
    os.makedirs(STATE, exist_ok=True)
    with open(tested, "w") as f:
        f.write(f"{config} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return ["config=tested"]


def main(mode, timeout, tool, ignoreip_check, daemons, ours):
    test = mode == "check"
    if tool == "auto":  # as banaction auto: nftables where nft is, or where iptables is not either
        tool = "nft" if found("nft") or not found("iptables") else "iptables"
        print(f"tool={tool}")
    if daemons != "-":
        names = daemons.split()
        _, out, _ = run("systemctl", "is-active", *names)
        states = out.split() + ["unknown"] * len(names)
        for name, state in zip(names, states[: len(names)], strict=True):
            print(f"daemon {name}={state}")
    server = connected(timeout)
    if server is None:
        print("ping=no")
        _, out, err = run("systemctl", "status", "--no-pager", "-n", "5", "fail2ban")
        print("\n".join(f"status: {line}" for line in (out + err).splitlines()))
        return
    overall, answers, ours = statuses(server, ours, timeout)
    print("ping=yes")
    print(f"Fail2Ban v{server.ask('version')}")
    print("fail2ban> " + beautify(["status"], overall))
    for jail, answer in answers.items():
        print("fail2ban> " + beautify(["status", jail], answer))
    server.close()
    print()
    # Each jail's action makes its rules in the jail's own thread, just after the jail starts:
    # right after a (re)start they may take a moment. Wait for them (PING_TIMEOUT in all), unless
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
    print(f"firewall={works}")
    for jail in ours:
        print(f"rules {jail}={'missing' if jail in missing else 'ok'}")
        if jail in errors:
            print(f"actionerror {jail} {errors[jail]}")
    config = content()
    for jail in ours:
        source = source_of(answers.get(jail, []))
        if jail not in FAILURES or source is None:
            continue
        counts = seen(jail, source, config, test)
        if counts is None:
            print(f"source {jail}=empty")
        elif counts == "?":
            print(f"unchecked {jail}")
        elif counts:
            print(f"seen {jail} {counts}")
    print("\n".join(config_test(config, ignoreip_check, test)))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), *sys.argv[3:6], sys.argv[6:])
