"""The deploy's own pyinfra operations, for what pyinfra's built-in ones cannot say."""

import json
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.operations import server

from .canonical import printable, public_key
from .facts import FAILURES, FILTER_DIR, SCRIPTS, bundled, node_read
from .jailstatus import check_result, complete, problems, summary
from .plan import files_differ
from .products import SELF_TESTS
from .scripts.nodelib import STATE_DIR
from .share import authorized_as_wanted

STAGE = f"{STATE_DIR}/stage"  # what configure stages, tested, before it goes live


def shipped_script(name, *args):
    """`sh -c '<text of pvefail2ban/scripts/NAME>' NAME ARGS...`: run a script of ours on the node without
    leaving a copy there. Arguments are quoted."""
    return StringCommand(
        "sh",
        "-c",
        QuoteString((SCRIPTS / name).read_text()),
        name,
        *(QuoteString(str(a)) for a in args),
    )


@operation(is_idempotent=False)
def fail(reason: str):
    """Fail this node, and only this node, with `reason` (the other nodes go on)."""

    def report(state, host):
        host.log_styled(reason, fg="red", log_func=logger.error)
        return False

    yield FunctionCommand(report, (), {})


@operation()
def tested_files(files: dict, change: list, remove: list = (), logs: list = ()):
    """Put `files` ({path: bytes}) live, root:root 0644, only after fail2ban accepted the result.

    `change`: the paths that differ on the node, `remove`: ours no longer wanted (both from
    pvefail2ban.plan). They are staged, the whole configuration is tested as it will be
    (fail2ban-client -t, fail2ban-regex on the proxmox filter), and only then put live: a failed
    test fails the node with fail2ban's own words and leaves its live files untouched.

    `logs`: log files a jail reads that another program writes and may not have made yet (Caddy
    makes its access log at its first request; fail2ban refuses a jail without its file): made
    empty, owned as their folder, where they are missing.

    Added only where something changes (tasks/configure.py): no operation at all otherwise.
    """
    dirs = [QuoteString(d) for d in sorted({str(Path(STAGE + path).parent) for path in change})]
    dirs.append(f"{STAGE}/selftest")
    yield StringCommand("rm", "-rf", STAGE, "&&", "mkdir", "-p", "-m", "0700", *dirs, STAGE)
    for path in change:
        yield FileUploadCommand(BytesIO(files[path]), STAGE + path)
    for name, lines in SELF_TESTS.items():  # failure lines of the daemons of this node's filters
        if any(f"{FILTER_DIR}/{name}{ext}" in files for ext in (".conf", ".local")):
            sample = "".join(f"{line}\n" for line in lines).encode()
            yield FileUploadCommand(BytesIO(sample), f"{STAGE}/selftest/{name}")
    yield FileUploadCommand(BytesIO(bundled("probe.py").encode()), f"{STAGE}/probe.py")
    yield FileUploadCommand(str(SCRIPTS / "apply.sh"), f"{STAGE}/apply.sh")
    yield StringCommand(
        "sh", f"{STAGE}/apply.sh", STAGE, *map(QuoteString, change),
        *(["--", *map(QuoteString, remove)] if remove else []),
        *(["--logs", *map(QuoteString, logs)] if logs else []),
    )  # fmt: skip


@operation(is_idempotent=False)
def pveproxy_real_ip(text: str, header: str = "-", allow: str = "-"):
    """/etc/default/pveproxy as `text` (plan.pveproxy_defaults: PROXY_REAL_IP_* for
    fail2ban_trusted_proxies), put live only where bash reads `header` and `allow` from it (as
    pveproxy will; "-": unchecked), pveproxy restarted once on it; the previous file back if
    pveproxy does not come back (scripts/pveproxy-real-ip.sh). Added only where the text differs."""
    new = f"{STATE_DIR}/pveproxy.new"
    yield StringCommand("mkdir", "-p", "-m", "0700", STATE_DIR)
    yield FileUploadCommand(BytesIO(text.encode()), new)
    yield shipped_script("pveproxy-real-ip.sh", new, header, allow)


@dataclass(frozen=True)
class Expected:
    """What the check must find on a node (tasks/verify.py, from its plan)."""

    jails: tuple  # our jails that must run, each on a live source with its firewall rules
    off: tuple  # our jails the settings switched off, which must not run
    tool: str  # the ban action's firewall tool: nft or iptables
    ping_timeout: int = 30  # seconds fail2ban gets to answer after a (re)start
    node_timeout: int = 120  # seconds the check may take beyond its waits for fail2ban
    daemons: dict = field(default_factory=dict)  # {service of ours that must run: what it does}
    blind: tuple = ()  # why a jail cannot see its attackers (plan.Plan.blind): never protected
    failures: dict = field(default_factory=dict)  # {jail: [regex, filter]} where not FAILURES's
    proxies: tuple = ()  # fail2ban_trusted_proxies: a jail that sees only them sees nobody

    def config(self):
        """What scripts/probe.py `check` is asked."""
        return {
            "ping_timeout": self.ping_timeout,
            "tool": self.tool,
            "jails": list(self.jails),
            "daemons": list(self.daemons),
            "failures": {
                jail: self.failures.get(jail) or FAILURES[jail]
                for jail in self.jails
                if jail in self.failures or jail in FAILURES
            },
            "proxies": list(self.proxies),
        }

    def report(self, host, result):
        """Log the check's `result` (jailstatus.check_result) for `host`; True when protected."""
        found = [*problems(result, list(self.jails), list(self.off), self.tool), *self.blind]
        for problem in found:
            host.log_styled(f"NOT PROTECTED: {problem}", fg="red", log_func=logger.error)
        if found:
            return False
        for jail in result["empty_sources"]:
            host.log_styled(
                f"WARNING: jail {jail}: its source holds no line yet, so it cannot be shown "
                "to see its daemon",
                fg="yellow",
                log_func=logger.warning,
            )
        summary_line = summary(result, list(self.jails), self.daemons)
        host.log_styled(summary_line, fg="green", log_func=logger.info)
        return True


@operation(is_idempotent=False)
def verified(expected: Expected, recorded: dict = None, ops: list = ()):
    """Check, every run, that the node is as `expected` says: fail2ban answers, each of its jails
    runs, reads a live source and has its firewall rules in place (else fail2ban's own error line
    is shown), none of the jails switched off runs, the ban action's tool works, the configuration
    on disk passes `fail2ban-client -t` and has no ignoreip entry that would kill fail2ban at its
    next start, our daemons run. Prints a one-line summary of every running jail; fails the node
    with the reasons otherwise.

    `recorded`: the check as read with the facts (Facts "check", jailstatus.check_result), and
    `ops`: the operations this run added for the node. Where none of them changed anything and the
    record shows everything in order, with nothing left to test (the configuration tested as it is,
    every failure line checked), the record is the check: no command. Otherwise the node is checked
    now (scripts/probe.py `check`). Where this run added no operation at all for the node and the
    record holds, that is known now: the summary line is said, and the operation is a no-op (pyinfra's
    results say "No change": an admin reads that table for drift)."""
    if recorded is not None and not ops:
        jails, off, tool = list(expected.jails), list(expected.off), expected.tool
        if complete(recorded, tool, expected.daemons) and not problems(recorded, jails, off, tool):
            expected.report(host, recorded)
            host.noop("fail2ban protects this node, as read with its facts")
            return

    def check(state, host):
        if recorded is not None and not any(op.did_change() for op in ops):
            jails, off, tool = list(expected.jails), list(expected.off), expected.tool
            if complete(recorded, tool, expected.daemons) and not problems(
                recorded, jails, off, tool
            ):
                return expected.report(host, recorded)
        config = json.dumps(expected.config(), sort_keys=True)
        # it waits for fail2ban twice (its answer, then its rules), each up to ping_timeout
        seconds = expected.node_timeout + 2 * expected.ping_timeout
        try:
            _, output = host.run_shell_command(
                node_read(
                    "probe.py",
                    "check",
                    QuoteString(config),
                    absent="",
                    seconds=seconds,
                    flags=("-S",),
                ),
                print_output=state.print_output,
                print_input=state.print_input,
                _timeout=seconds,
            )
        except TimeoutError:
            host.log_styled(
                f"NOT PROTECTED: the check did not answer within {seconds} s "
                "(fail2ban_node_timeout + 2 x fail2ban_ping_timeout)",
                fg="red",
                log_func=logger.error,
            )
            return False
        said = printable(" ".join(output.stderr_lines)[-500:])  # a node's words: shown safely
        try:
            result, why = check_result(json.loads("\n".join(output.stdout_lines))), said
        except ValueError as error:  # also no answer at all (its error is what it said)
            result = None
            why = f"its answer is not the check's: {printable(str(error), 200)}" + (
                f"; it said: {said}" if said else ""
            )
        if result is None:
            host.log_styled(
                f"NOT PROTECTED: the check failed: {why}", fg="red", log_func=logger.error
            )
            return False
        return expected.report(host, result)

    yield FunctionCommand(check, (), {})


@operation(is_idempotent=False)
def script_reported(script: str):
    """Run shipped script `script` (a file in pvefail2ban/scripts/) on the node and show what it prints in
    the run's output; its exit code decides success. For steps whose outcome the admin must read
    (e.g. remove.py's restart)."""

    def run(state, host):
        ok, output = host.run_shell_command(
            shipped_script(script), print_output=state.print_output, print_input=state.print_input
        )
        for line in output.stdout_lines + output.stderr_lines:
            host.log_styled(
                printable(line, 1000),
                fg="green" if ok else "red",
                log_func=logger.info if ok else logger.error,
            )
        return ok

    yield FunctionCommand(run, (), {})


def python_script(name, *args, flags=()):
    """`python3 FLAGS -c '<text of pvefail2ban/scripts/NAME>' ARGS...`, quoted, leaving no copy behind."""
    return StringCommand(
        "python3",
        *flags,
        "-c",
        QuoteString(bundled(name)),
        *(QuoteString(str(a)) for a in args),
    )


@operation()
def placed_files(files: dict, present: dict, private_dir: str = None):
    """Put `files` ({path: (bytes, mode)}) in place, root:root, each replaced in one rename.
    `present`: {path: (sha1, mode, owner)} as the node has them (NodeFacts); `private_dir` is made
    root-only (0700) before anything is written into it. Added through files_in_place."""
    change = files_differ(files, present)
    if private_dir:
        yield StringCommand(
            "install", "-d", "-m", "0700", "-o", "root", "-g", "root", QuoteString(private_dir)
        )
    yield StringCommand(
        "mkdir", "-p", *(QuoteString(d) for d in sorted({str(Path(p).parent) for p in change}))
    )
    for path in change:
        data, mode = files[path]
        temp = QuoteString(f"{path}.pve-fail2ban-new")
        yield FileUploadCommand(BytesIO(data), f"{path}.pve-fail2ban-new")
        yield StringCommand(
            "chown", "root:root", temp, "&&", "chmod", QuoteString(mode), temp, "&&", "mv", "-f",
            temp, QuoteString(path),
        )  # fmt: skip


def files_in_place(name, files, present, private_dir=None):
    """placed_files where `files` differ from `present`, else no operation at all (pyinfra reads the
    call stack of every operation it adds: in a run that changes nothing, that is controller CPU per
    node). Returns the operation, or None."""
    if not files_differ(files, present):
        return None
    return placed_files(name=name, files=files, present=present, private_dir=private_dir)


@operation(is_idempotent=False)
def share_key(keys: dict, directory: str, key: str):
    """This node's own share key pair at `key` (ed25519, made here, or kept where it exists; the
    private half never leaves the node), its public half recorded in `keys` under the node's name
    for the peers' lines."""

    def make(state, host):
        ok, output = host.run_shell_command(
            StringCommand(
                "umask 077 && install -d -m 0700", QuoteString(directory), "&& { test -f",
                QuoteString(key), "|| ssh-keygen -q -t ed25519 -N '' -C",
                QuoteString(f"pve-fail2ban-share@{host.name}"), "-f", QuoteString(key),
                "; } && cut -d' ' -f1,2", QuoteString(f"{key}.pub"),
            ),
            print_output=state.print_output,
            print_input=state.print_input,
        )  # fmt: skip
        if not ok or not output.stdout_lines:
            return False
        try:  # what the node says its key is: a key, or nothing of it reaches a peer
            keys[host.name] = public_key(output.stdout_lines[-1].strip(), ("ssh-ed25519",))
        except ValueError as error:
            host.log_styled(f"its share key is refused: {error}", fg="red", log_func=logger.error)
            return False
        return True

    yield FunctionCommand(make, (), {})


@operation(is_idempotent=False)
def peers_authorized(request, current: list, coming: bool = False):
    """Root's authorized_keys holds exactly our lines of `request()` (share.authorization,
    called when the operation runs, once every node's key exists); every other line stays.
    `current`: our lines on the node as read; `coming`: a key is made in this run. Run with
    `_serial=True`: on PVE the file is one for the whole cluster (pmxcfs)."""
    wanted = request()
    if not coming and authorized_as_wanted(wanted, current):
        host.noop("the peers' share keys are authorized, for the receiver only")
        return
    yield python_script("authorize.py", json.dumps(wanted, sort_keys=True))


def daemon_running(name, service, changed, facts, prefix):
    """A daemon of ours (re)started and enabled when its files `changed` or it is not running or
    not enabled as NodeFacts read it (`<prefix>_activestate`, `<prefix>_unitfilestate`). Returns
    the operation, or None where none is needed."""
    active, enabled = facts.get(f"{prefix}_activestate"), facts.get(f"{prefix}_unitfilestate")
    if changed or active != "active" or enabled != "enabled":
        return server.shell(
            name=name,
            commands=[
                StringCommand(
                    "systemctl daemon-reload && systemctl enable -q",
                    QuoteString(service),
                    "&& systemctl restart",
                    QuoteString(service),
                )
            ],  # fmt: skip
        )
