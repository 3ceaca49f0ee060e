"""One custom pyinfra fact that reads everything the deploy needs from a node in one command.

The parsing is a plain function (parse_node) so it is unit-tested without a node.
"""
from pyinfra.api import FactBase

# Files the deploy manages (the guide's names) and where a packaged filter pushes ours to.
SSHD_JAIL = "/etc/fail2ban/jail.d/01_sshd.conf"
PROXMOX_JAIL = "/etc/fail2ban/jail.d/02_proxmox.conf"
RECIDIVE_JAIL = "/etc/fail2ban/jail.d/03_recidive.conf"
FILTER = "/etc/fail2ban/filter.d/proxmox.conf"
FILTER_LOCAL = "/etc/fail2ban/filter.d/proxmox.local"
MANAGED = (SSHD_JAIL, PROXMOX_JAIL, RECIDIVE_JAIL, FILTER, FILTER_LOCAL)
PACKAGES = ("fail2ban", "python3-systemd", "python3-pyinotify", "nftables", "iptables")
LOGS = ("/var/log/auth.log", "/var/log/daemon.log")

NODE_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os_id=$ID"; echo "os_like=$ID_LIKE"; echo "os_version=$VERSION_ID"
test -d /run/systemd/system && echo systemd=yes
command -v journalctl >/dev/null && echo journal=yes
for f in {logs}; do test -f "$f" && echo "log=$f"; done
for t in nft iptables; do command -v "$t" >/dev/null 2>&1 && echo "tool=$t"; done
sshd -T 2>/dev/null | grep -Ei '^(port|maxauthtries) ' | sed 's/^/sshd_/'
echo "client=${{SSH_CLIENT%% *}}"
dpkg-query -W -f='pkg=${{Package}} ${{db:Status-Abbrev}} ${{Version}}\n' {packages} 2>/dev/null
dpkg-query -S {filter} 2>/dev/null | sed 's/:.*//; s/^/filter_owner=/'
for f in {managed}; do
  test -f "$f" && echo "file=$f $(sha1sum < "$f" | cut -d' ' -f1) $(stat -c '%a %U:%G' "$f")"
done
systemctl show -p ActiveState -p MainPID -p UnitFileState fail2ban 2>/dev/null | sed 's/^/fail2ban_/'
t=$(stat -c %Y /var/lib/apt/lists/partial /var/lib/apt/periodic/update-success-stamp 2>/dev/null | sort -n | tail -n 1)
ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages' || t=0  # no lists at all: as good as ancient
echo "apt_lists_age=$(( $(date +%s) - ${{t:-0}} ))"
""".format(logs=" ".join(LOGS), packages=" ".join(PACKAGES), filter=FILTER, managed=" ".join(MANAGED))


def parse_node(lines):
    """key=value lines of NODE_SCRIPT -> a dict the plan reads."""
    node = {"logs": [], "tools": [], "packages": {}, "files": {}, "sshd_ports": [], "systemd": False,
            "journal": False, "filter_owner": None, "apt_lists_age": None, "sshd_maxauthtries": None, "client": None}
    for line in lines:
        key, _, value = line.strip().partition("=")
        if not _:
            # `sshd -T` prints "port 22" and "maxauthtries 6" (after our sshd_ prefix)
            key, _, value = line.strip().partition(" ")
            if key.lower() == "sshd_port":
                node["sshd_ports"].append(value.strip())
            elif key.lower() == "sshd_maxauthtries" and value.strip().isdigit():
                node["sshd_maxauthtries"] = int(value)
            continue
        if key in ("systemd", "journal"):
            node[key] = value == "yes"
        elif key == "log":
            node["logs"].append(value)
        elif key == "tool":
            node["tools"].append(value)
        elif key == "pkg":
            name, status, version = (value.split() + ["", "", ""])[:3]
            if status == "ii":
                node["packages"][name] = version
        elif key == "file":
            path, sha1, mode, owner = value.split()
            node["files"][path] = (sha1, mode, owner)
        elif key in ("os_id", "os_like", "os_version", "client", "filter_owner"):
            node[key] = value or None
        elif key == "apt_lists_age" and value.lstrip("-").isdigit():
            node["apt_lists_age"] = int(value)
        elif key.startswith("fail2ban_"):
            node[key.lower()] = value
    node["fail2ban_mainpid"] = int(node.get("fail2ban_mainpid") or 0)
    return node


class NodeFacts(FactBase):
    """What the deploy adapts to: distro, systemd, logs, sshd, firewall tools, packages, our files."""

    def command(self):
        return NODE_SCRIPT

    def process(self, output):
        return parse_node(output)
