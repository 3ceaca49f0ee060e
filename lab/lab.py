"""Start, inspect and tear down the lab: N simulated PVE nodes and an attacker on a bridge of their own.

Everything created carries the label `pvelab` (containers also `pvelab.role`); nothing without it is
ever touched.
"""

import gzip
import io
import ipaddress
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass

import docker
from docker.errors import APIError, NotFound

from . import config
from .images import ensure_images

# lines of a pyinfra run that say why a node failed: its connection, its facts, an operation
TROUBLE = re.compile(r"Could not|Error|error:|NOT PROTECTED|Timed out|Traceback|[Ff]ailed")


def run_report(text, tail=3000):
    """What a failed assertion on a pyinfra run shows: every line that says why a node failed
    (TROUBLE; a node that fails before its first operation is in no later line), then the tail."""
    trouble = [line for line in text.splitlines() if TROUBLE.search(line)]
    return "\n".join(["why nodes failed:", *trouble[:40], "the end of the run:", text[-tail:]])


ROLE = "pvelab.role"
NS = config.NS_LABEL  # the lab's namespace: labs of other namespaces are never touched
VARIANT = "pvelab.variant"
SHARED_PRIV = "/etc/pve/priv"  # where PVE's pmxcfs keeps the cluster's authorized_keys


# lab.sh's command ($1 timeout, $2 command, $3 its name): its output to a file of its own, then
# that file, then a mark with its exit code; it removes the files of the commands named after $3
# (read back whole before). SH_AGAIN reads a file again.
SH_OUT = "/run/lab-out"
SH_WRAPPER = (
    f'd={SH_OUT}; f=$d/"$3"; mkdir -p $d; (cd $d && shift 3 && rm -f -- "$@"); '
    'timeout "$1" sh -c "$2" >"$f" 2>&1; rc=$?; cat "$f"; printf "\\n%s %s\\n" "$3" $rc; exit $rc'
)
SH_AGAIN = f'cat {SH_OUT}/"$1" && printf "\\n%s %s\\n" "$1" "$2"'
_read = {}  # container id -> names of the output files read back whole, removed by the next sh
_read_lock = threading.Lock()


def _marked(raw, name):
    """(exit code, output) of SH_WRAPPER's output ending in the mark `name`, else (None, "")."""
    text = (raw or b"").decode("utf-8", "replace")
    head, mark, tail = text.rpartition(f"\n{name} ")
    if not mark or not tail.strip().isdigit():
        return None, ""
    return int(tail), head


class LabError(Exception):
    """Bad lab input or a lab that did not come up; the message says what and why."""


def plan_nodes(count=None, variants=None):
    """The variant of each node to start: `variants` as given, or `count` nodes cycling one of each."""
    if variants:
        variants = [
            v.strip() for v in (variants.split(",") if isinstance(variants, str) else variants)
        ]
        unknown = [v for v in variants if v not in config.VARIANTS]
        if unknown:
            raise LabError(
                f"unknown node variant {unknown[0]!r}: choose from {', '.join(config.VARIANTS)}"
            )
        if count is not None and count != len(variants):
            raise LabError(f"{count} nodes asked for but {len(variants)} variants named")
        count = len(variants)
    if count is None:
        count = len(config.DEFAULT_VARIANTS)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= config.MAX_NODES:
        raise LabError(f"number of nodes must be 1..{config.MAX_NODES}, got {count!r}")
    if not variants:
        variants = [config.DEFAULT_VARIANTS[i % len(config.DEFAULT_VARIANTS)] for i in range(count)]
    return variants


def node_ip(index):
    """Address of node `index` (1-based) on the lab network."""
    return str(ipaddress.ip_network(config.SUBNET)[config.NODE_IP_BASE - 1 + index])


def node_ip6(index):
    """IPv6 address of node `index`: ::11 for pve1, as its IPv4 one ends in .11."""
    return config.SUBNET6.split("/")[0] + str(config.NODE_IP_BASE - 1 + index)


def simulator_env(variant, ipv4_only=False, delay=None):
    """/etc/pvelab/pvedaemon.env of a node: how its simulated PVE (or PMG) behaves."""
    return (
        f"PVE_SIM_RELEASE={7 if variant == 'legacy' else 8}\n"
        f"PVE_SIM_LISTEN={'0.0.0.0' if ipv4_only else '::'}\n"
        f"PVE_SIM_DELAY={config.FAIL_DELAY if delay is None else delay}\n"
    )


def simulator_files(variant, ipv4_only=False, delay=None, pbs="fixed"):
    """{path: (bytes, mode)} a node gets before it boots: how its simulated daemons behave. `pbs`:
    "fixed", or "old" (a PBS before proxmox-rest-server 1.0.5: the client's Forwarded header
    chooses the logged address), with the Debian changelog of such a release (config.PBS_RELEASES)."""
    files = {
        "/etc/pvelab/pvedaemon.env": (simulator_env(variant, ipv4_only, delay).encode(), 0o644)
    }
    if "pbs" in config.PRODUCTS[variant].split():
        env = (
            f"PBS_SIM_LISTEN={'0.0.0.0' if ipv4_only else '::'}\n"
            f"PBS_SIM_DELAY={config.FAIL_DELAY if delay is None else delay}\n"
            f"PBS_SIM_FORWARDED={'client' if pbs == 'old' else 'proxy'}\n"
        )
        version, date = config.PBS_RELEASES[pbs]
        changelog = (
            f"rust-proxmox-backup ({version}) bookworm; urgency=medium\n\n"
            "  * the pve-fail2ban lab's simulated release\n\n"
            f" -- Proxmox Support Team <support@proxmox.com>  {date}\n"
        )
        files["/etc/pvelab/pbs.env"] = (env.encode(), 0o644)
        files["/usr/share/doc/proxmox-backup-server/changelog.Debian.gz"] = (
            gzip.compress(changelog.encode(), mtime=0),
            0o644,
        )
    if "pdm" in config.PRODUCTS[variant].split():  # the same simulator (PBS_SIM_PRODUCT=pdm)
        env = (
            f"PBS_SIM_LISTEN={'0.0.0.0' if ipv4_only else '::'}\n"
            f"PBS_SIM_DELAY={config.FAIL_DELAY if delay is None else delay}\n"
        )
        version, date = config.PDM_RELEASE
        changelog = (
            f"proxmox-datacenter-manager ({version}) trixie; urgency=medium\n\n"
            "  * the pve-fail2ban lab's simulated release\n\n"
            f" -- Proxmox Support Team <support@proxmox.com>  {date}\n"
        )
        files["/etc/pvelab/pbs.env"] = (env.encode(), 0o644)
        files["/usr/share/doc/proxmox-datacenter-manager/changelog.gz"] = (
            gzip.compress(changelog.encode(), mtime=0),
            0o644,
        )
    return files


def units_of(variant):
    """The systemd units of the simulated daemons a node of `variant` runs."""
    return [unit for product in config.PRODUCTS[variant].split() for unit in config.UNITS[product]]


@dataclass
class Member:
    """A running lab container: a node (pve1, pve2, ...) or the attacker."""

    name: str
    ip: str
    variant: str
    container: object
    ip6: str = ""

    def sh(self, command, timeout=60, check=False):
        """Run `command` with sh inside the container; return (exit code, combined output).

        Docker 20.10 now and then hands back an exec's output empty under load (moby#27289,
        docker-py#2042): the output also goes to a file in the container, ended by a mark with
        the exit code, and is read again from there when the mark did not come back."""
        name = uuid.uuid4().hex
        with _read_lock:
            done = _read.pop(self.container.id, [])
        result = self.container.exec_run(
            ["sh", "-c", SH_WRAPPER, "sh", str(timeout), command, name, *done]
        )
        exit_code, output = _marked(result.output, name)
        for _ in range(3):  # lost on the way: read again (the command itself is never run twice)
            if exit_code is not None:
                break
            again = self.container.exec_run(
                ["sh", "-c", SH_AGAIN, "sh", name, str(result.exit_code)]
            )
            exit_code, output = _marked(again.output, name)
        if exit_code is None:
            raise LabError(f"{self.name}: `{command}` exited {result.exit_code}, output lost")
        with _read_lock:
            _read.setdefault(self.container.id, []).append(name)
        if check and exit_code != 0:
            raise LabError(f"{self.name}: `{command}` exited {exit_code}: {output.strip()}")
        return exit_code, output

    def journal(self, unit, since=None):
        cmd = f"journalctl -q -o short --no-pager -u {unit}"
        if since:
            cmd += f" --since '{since}'"
        return self.sh(cmd)[1]


class Lab:
    def __init__(self, client=None):
        self.client = client or docker.from_env()
        config.STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.key_path = config.STATE_DIR / "id_ed25519"
        self.known_hosts = config.STATE_DIR / "known_hosts"
        self.inventory_path = config.STATE_DIR / "inventory.py"
        self.shared_keys = (
            None  # the host directory standing in for pmxcfs, when up(shared_keys=True)
        )

    # ---- what is running -------------------------------------------------------------------
    def _containers(self, role=None):
        # Containers are known by the role label they get at creation: images carry `pvelab` too, so a
        # container someone else runs from a lab image is not the lab's and is never touched.
        filters = {"label": [f"{ROLE}={role}" if role else ROLE, f"{NS}={config.NS_VALUE}"]}
        return self.client.containers.list(all=True, filters=filters)

    def _member(self, container):
        container.reload()
        labels = container.labels
        net = container.attrs["NetworkSettings"]["Networks"].get(config.NETWORK, {})
        return Member(
            labels.get("pvelab.name", container.name),
            net.get("IPAddress", ""),
            labels.get(VARIANT, ""),
            container,
            net.get("GlobalIPv6Address", ""),
        )

    def nodes(self):
        members = [self._member(c) for c in self._containers("node")]
        return sorted(members, key=lambda m: int(m.name.removeprefix("pve")))

    def attacker(self):
        found = self._containers("attacker")
        if not found:
            raise LabError("the lab has no attacker: run `make lab-up` first")
        return self._member(found[0])

    # ---- up and down -----------------------------------------------------------------------
    def down(self, networks=True):
        """Remove every container labelled as ours (also a crashed run's leftovers), and the
        network unless `networks` is False (a lab coming up again keeps it: the controller's
        addresses, which every node's ignoreip holds, stay the same)."""
        for container in self._containers():
            try:
                container.remove(force=True, v=True)
            except NotFound:
                pass
        if networks:
            remove_networks(self.client, config.NS_VALUE)

    def up(
        self,
        count=None,
        variants=None,
        ipv4_only=(),
        delay=None,
        shared_keys=False,
        pbs="fixed",
        data=None,
    ):
        """Start a fresh lab of `count` nodes (or the `variants` given) plus the attacker.
        `ipv4_only`: names of nodes whose PVE listens on IPv4 only; `delay`: the simulated PVE's
        answer delay for failed logins (default config.FAIL_DELAY); `shared_keys`: root's
        authorized_keys on every node is a symlink into one directory all nodes share, as PVE's
        pmxcfs makes it (/root/.ssh/authorized_keys -> /etc/pve/priv/authorized_keys); `pbs`: how
        simulated PBS nodes behave (simulator_files); `data`: settings every node gets in the
        lab's inventory."""
        variants = plan_nodes(count, variants)
        limit = _inotify_instances()
        if limit is not None and limit < INOTIFY_PER_NODE * len(variants):
            raise LabError(
                f"{len(variants)} nodes need fs.inotify.max_user_instances >= "
                f"{INOTIFY_PER_NODE * len(variants)} on this machine (it is {limit}: each node's "
                "systemd takes several); `sysctl -w fs.inotify.max_user_instances=1024` as root, "
                "or scripts/ensure-docker.sh"
            )
        self.down(networks=False)
        images = ensure_images(sorted(set(variants)) + ["attacker"], self.client)
        self._ensure_key()
        self.shared_keys = self._shared_keys_dir() if shared_keys else None
        network = self._network()
        try:
            for index, variant in enumerate(variants, start=1):
                name = f"pve{index}"
                env = simulator_files(variant, name in ipv4_only, delay, pbs)
                self._start(
                    name,
                    images[variant],
                    variant,
                    (node_ip(index), node_ip6(index)),
                    network,
                    "node",
                    env,
                )
            self._start(
                "attacker",
                images["attacker"],
                "attacker",
                (config.ATTACKER_IP, config.ATTACKER_IP6),
                network,
                "attacker",
            )
            nodes = self.nodes()
            for node in nodes:
                # every container boots at once: 30 of them take minutes on 2 cores
                self.wait_ready(node, timeout=max(180, 6 * len(nodes)))
            self.write_known_hosts(nodes)
            self.write_inventory(nodes, host_data={n.name: data or {} for n in nodes})
        except Exception:
            self.down()
            raise
        return nodes

    def recreate(self, node, ipv4_only=False, delay=None, pbs="fixed"):
        """Replace one node's container by a fresh one of the same variant (new host keys), its
        simulated daemons as asked (simulator_files)."""
        images = ensure_images([node.variant], self.client)
        node.container.remove(force=True)
        network = self.client.networks.get(config.NETWORK)
        env = simulator_files(node.variant, ipv4_only, delay, pbs)
        self._start(
            node.name, images[node.variant], node.variant, (node.ip, node.ip6), network, "node", env
        )
        fresh = next(n for n in self.nodes() if n.name == node.name)
        self.wait_ready(fresh)
        return fresh

    def reboot(self, node):
        """Reboot one node (its container restarted: systemd shuts down and boots again, the same
        disk, addresses and host keys)."""
        node.container.restart(timeout=20)
        fresh = next(n for n in self.nodes() if n.name == node.name)
        self.wait_ready(fresh)
        return fresh

    def _shared_keys_dir(self):
        """A fresh host directory standing in for /etc/pve/priv (pmxcfs), holding the controller's key."""
        shared = config.STATE_DIR / "pmxcfs-priv"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True, mode=0o700)
        keys = shared / "authorized_keys"
        keys.write_bytes(self.key_path.with_suffix(".pub").read_bytes())
        keys.chmod(0o600)
        return shared

    def _ensure_key(self):
        if not self.key_path.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "pvelab-controller",
                    "-f",
                    str(self.key_path),
                ],
                check=True,
            )

    def _network(self):
        return ensure_network(self.client, config.NAMESPACE)

    def _start(self, name, image, variant, ips, network, role, simulator=None):
        """Create and start a container at `ips` (IPv4, IPv6); `simulator`: the files its simulated
        daemons read (simulator_files)."""
        systemd = role == "node"
        container = self.client.containers.create(
            image,
            name=f"{config.PREFIX}-{name}",
            hostname=name,
            detach=True,
            labels={
                config.LABEL: "1",
                ROLE: role,
                VARIANT: variant,
                "pvelab.name": name,
                NS: config.NS_VALUE,
            },  # fmt: skip
            network=network.name,
            networking_config={
                network.name: self.client.api.create_endpoint_config(
                    ipv4_address=ips[0], ipv6_address=ips[1]
                )
            },
            **(
                dict(
                    cap_add=["SYS_ADMIN", "NET_ADMIN"],
                    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
                    cgroupns="host",
                    volumes={
                        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                        **(
                            {str(self.shared_keys): {"bind": SHARED_PRIV, "mode": "rw"}}
                            if self.shared_keys
                            else {}
                        ),
                    },
                    tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
                    stop_signal="SIGRTMIN+3",
                )
                if systemd
                else {}
            ),
        )
        if systemd:
            pub = (self.key_path.with_suffix(".pub")).read_bytes()
            keys = (f"{SHARED_PRIV}/authorized_keys", None) if self.shared_keys else (pub, 0o600)
            container.put_archive("/root/.ssh", _tar({"authorized_keys": keys}))
            container.put_archive(
                "/", _tar({path.lstrip("/"): content for path, content in simulator.items()})
            )
        container.start()
        return container

    def wait_ready(self, node, timeout=180):
        """Wait (bounded: a node boots in seconds, a loaded machine of 2 cores running three labs
        can take minutes) until systemd has booted and sshd and the simulated daemons are active."""
        deadline = time.monotonic() + timeout
        state, pause = "", 0.5
        units = ["ssh", *units_of(node.variant)]
        while time.monotonic() < deadline:
            _, state = node.sh(
                f"systemctl is-system-running; systemctl is-active {' '.join(units)}", timeout=10
            )
            lines = state.split()
            if (
                lines
                and lines[0] in ("running", "degraded")
                and lines[1:] == ["active"] * len(units)
            ):
                return
            time.sleep(pause)
            pause = min(2.0, pause * 1.5)  # each poll is a docker exec: fewer as the wait grows
        raise LabError(
            f"{node.name} ({node.variant}) did not boot within {timeout}s: {' '.join(state.split())}"
        )

    # ---- how the controller reaches the nodes ------------------------------------------------
    def write_known_hosts(self, nodes):
        """Trust exactly the host keys the nodes made at boot, read through docker (no TOFU)."""
        lines = []
        for node in nodes:
            _, out = node.sh(
                "cat /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub "
                "/etc/ssh/ssh_host_rsa_key.pub",
                check=True,
            )
            for key in out.splitlines():
                keytype, blob = key.split()[:2]
                names = ",".join(a for a in (node.ip, node.ip6) if a)  # both of its addresses
                lines.append(f"{names} {keytype} {blob}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def write_inventory(self, nodes, host_data=None, path=None, groups=None):
        """A pyinfra inventory for the running lab: nodes in group pve_nodes, SSH as root by key.
        `host_data`: {name: {setting: value}} added to those nodes' data; `path`: where to write it
        (default: the lab's inventory); `groups`: {name: group} of nodes in another group."""
        hosts = [
            (
                n.name,
                {
                    "ssh_hostname": n.ip,
                    "lab_variant": n.variant,
                    **(host_data or {}).get(n.name, {}),
                },
            )
            for n in nodes
        ]
        text = f'''"""pyinfra inventory of the running lab (written by `python -m lab up`; do not edit)."""
_ssh = {{
    "ssh_user": "root",
    "ssh_key": {str(self.key_path)!r},
    "ssh_known_hosts_file": {str(self.known_hosts)!r},
    "ssh_strict_host_key_checking": "yes",
}}
'''
        groups = groups or {}
        for group in ["pve_nodes", *sorted(set(groups.values()) - {"pve_nodes"})]:
            members = [(n, d) for n, d in hosts if groups.get(n, "pve_nodes") == group]
            text += (
                f"{group} = [\n"
                + "".join(f"    ({name!r}, dict(_ssh, **{data!r})),\n" for name, data in members)
                + "]\n"
            )
        path = path or self.inventory_path
        path.write_text(text)
        return path

    def pyinfra(self, *args, deploy="deploy.py", timeout=900, yes=True, inventory=None):
        """Run `pyinfra -y <lab inventory> <deploy> ARGS` from the project root, as a user would.
        Returns the CompletedProcess with `.text` = stdout + stderr and `.report` = what a failed
        assertion shows of it (run_report)."""
        cmd = [
            sys.executable,
            "-m",
            "pyinfra",
            *(["-y"] if yes else []),
            str(inventory or self.inventory_path),
            deploy,
            *args,
        ]
        out = subprocess.run(
            cmd,
            cwd=config.ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )  # as from cron: no terminal to answer a prompt
        out.text = out.stdout + out.stderr
        out.report = run_report(out.text)
        return out

    def ssh_command(self, node, *command, ip=None):
        """argv to run `command` on `node` over SSH from the controller, as pyinfra connects."""
        return [
            "ssh",
            "-i",
            str(self.key_path),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{ip or node.ip}",
            *command,
        ]


def ensure_network(client, namespace):
    """The lab network of `namespace` (config.network_of), made if it is not there yet. Test
    workers make every worker's network before their first lab comes up (tests/conftest.py): the
    controller's addresses then stay the same through the whole run."""
    name, subnet, subnet6 = config.network_of(namespace)

    def existing():
        return next((n for n in client.networks.list(names=[name]) if n.name == name), None)

    found = existing()
    if found is not None:
        return found
    try:
        return client.networks.create(
            name,
            driver="bridge",
            labels={config.LABEL: "1", NS: namespace or "default"},
            enable_ipv6=True,  # dual stack: a ULA /64 beside the IPv4 /24
            ipam=docker.types.IPAMConfig(
                pool_configs=[
                    docker.types.IPAMPool(subnet=subnet, gateway=subnet.rsplit(".", 1)[0] + ".1"),
                    docker.types.IPAMPool(subnet=subnet6, gateway=subnet6.split("/")[0] + "1"),
                ]
            ),
        )
    except APIError as error:
        # another maker made it meanwhile: Docker then says 409 (the name) or 403 "Pool overlaps"
        # (the subnet, reserved before the network can be listed): wait for it, bounded
        for _ in range(20):
            made = existing()
            if made is not None:
                return made
            time.sleep(0.5)
        raise LabError(
            f"cannot create the lab network {name} ({subnet}, {subnet6}): {error.explanation}. "
            "Set PVELAB_SUBNET / PVELAB_SUBNET6 to free ranges."
        ) from error


def remove_networks(client, namespace_value=None):
    """Remove the lab's networks: of one namespace (its NS label value), or of every namespace."""
    labels = [config.LABEL] + ([f"{NS}={namespace_value}"] if namespace_value else [])
    for network in client.networks.list(filters={"label": labels}):
        try:
            network.remove()
        except (NotFound, APIError):
            pass  # gone already, or still in use by a lab of another run


INOTIFY_PER_NODE = 8  # inotify instances a booted lab node holds, with room (about 5 measured)


def _inotify_instances():
    try:
        return int(open("/proc/sys/fs/inotify/max_user_instances").read())
    except (OSError, ValueError):
        return None


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            if mode is None:  # a symbolic link to `data`
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
                continue
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
