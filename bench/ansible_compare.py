"""The same job done by Ansible, the way the popular fail2ban roles do it, on the same lab nodes:
our deploy and `ansible-playbook bench/ansible/playbook.yml`, each on fresh nodes, cold and no-op.

Both do the guide's job with the same settings and end with the same files: the playbook gets, per
node, the packages and the files our planner gives that node (read from the node, as our deploy
reads it), and puts them in place as the roles do (apt with a cache time, the files, the service
enabled, a restart handler), with fact gathering on, as the roles need it. Cluster-wide bans,
metrics and notifications are off for both: Ansible's roles have none. Before a time is reported,
every node must run the sshd and proxmox jails with their firewall rules in place.

ansible-core is installed by the bench into a venv of its own (bench/.ansible-venv), never into
the project's.
"""

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pvefail2ban.defaults import DEFAULTS  # noqa: E402
from pvefail2ban.facts import NODE_COMMAND, parse_node  # noqa: E402
from pvefail2ban.node import controller_addresses  # noqa: E402
from pvefail2ban.plan import plan_node  # noqa: E402
from pvefail2ban.render import render_files  # noqa: E402
from pvefail2ban.settings import validate  # noqa: E402

VENV = ROOT / "bench/.ansible-venv"
ANSIBLE_CORE = (
    "ansible-core>=2.16,<2.18"  # runs on Debian 12's Python 3.11 and the nodes' 3.11/3.13
)
PLAYBOOK = ROOT / "bench/ansible/playbook.yml"
# Both tools do the guide's job only: the features Ansible's roles do not have are off.
SAME_JOB = {"fail2ban_cluster_bans": False, "fail2ban_metrics": "off"}


def ensure_ansible():
    """ansible-playbook from the bench's own venv (made and filled on first use)."""
    tool = VENV / "bin/ansible-playbook"
    if not tool.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run(
            [str(VENV / "bin/pip"), "install", "-q", ANSIBLE_CORE], check=True, timeout=600
        )
    return tool


def node_files(lab, nodes):
    """{node name: (packages, [{path, content}])}: what our planner gives each node, from the
    node's own facts (NODE_COMMAND over SSH, as our deploy reads them)."""
    settings = validate({**DEFAULTS, **SAME_JOB})
    peers = sorted({n.ip for n in nodes} | {n.ip6 for n in nodes if n.ip6})
    controller, found = controller_addresses(), {}
    for node in nodes:
        out = subprocess.run(
            lab.ssh_command(node, NODE_COMMAND.get_raw_value()),
            capture_output=True,
            text=True,
            timeout=60,
        )
        facts = parse_node(out.stdout.splitlines())
        plan = plan_node(settings, facts, peers, controller, name=node.name)
        files = render_files(plan, settings)
        found[node.name] = (
            plan.packages,
            [{"path": p, "content": data.decode()} for p, data in sorted(files.items())],
        )
    return found


def write_inventory(lab, nodes, folder):
    """An Ansible inventory of the lab's nodes (SSH as pyinfra connects: root, the lab's key, its
    known_hosts, strict host key checking) with each node's packages and files, and its config."""
    folder.mkdir(parents=True, exist_ok=True)
    hosts = {}
    for name, (packages, files) in node_files(lab, nodes).items():
        ip = next(n.ip for n in nodes if n.name == name)
        hosts[name] = {"ansible_host": ip, "f2b_packages": packages, "f2b_files": files}
    inventory = {
        "pve_nodes": {
            "hosts": hosts,
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(lab.key_path),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes"
                ),
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }
    (folder / "inventory.json").write_text(json.dumps(inventory))
    # As fast as Ansible goes: a fork per node (pyinfra works on every node at once), pipelining.
    (folder / "ansible.cfg").write_text(
        f"[defaults]\nforks = {len(nodes)}\nhost_key_checking = True\n"
        "interpreter_python = /usr/bin/python3\nretry_files_enabled = False\n"
        "[ssh_connection]\npipelining = True\n"
    )
    return folder / "inventory.json", folder / "ansible.cfg"


def ansible_run(tool, inventory, config):
    """A callable that runs the playbook once and returns the CompletedProcess (`.text` too)."""

    def run():
        out = subprocess.run(
            [str(tool), "-i", str(inventory), str(PLAYBOOK)],
            capture_output=True,
            text=True,
            timeout=1800,
            env={
                "ANSIBLE_CONFIG": str(config),
                "PATH": "/usr/bin:/bin",
                "HOME": str(config.parent),
            },
            stdin=subprocess.DEVNULL,
        )
        out.text = out.stdout + out.stderr
        return out

    return run


def protected(nodes):
    """Names of `nodes` that do not run the sshd and proxmox jails with their firewall rules."""
    failing = []
    for node in nodes:
        jails = node.sh("fail2ban-client status")[1]
        rules = node.sh("nft list chain inet f2b-table f2b-chain 2>/dev/null")[1]
        if not all(j in jails and f"addr-set-{j} " in rules for j in ("sshd", "proxmox")):
            failing.append(node.name)
    return failing
