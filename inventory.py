"""Your Proxmox VE nodes. One line per node in `pve_nodes`: a name pyinfra can reach by SSH, or
(name, {data}) to give its address or per-node settings. Edit, then: pyinfra inventory.py deploy.py

SSH: root by key (your ssh-agent or ~/.ssh/id_*), host keys checked against ~/.ssh/known_hosts
(ssh to each node once first). Any fail2ban_* setting from group_data/all.py can be set per node.
"""

_ssh = {
    "ssh_user": "root",
    "ssh_strict_host_key_checking": "yes",  # a node whose host key changed is refused, never trusted
    # "ssh_key": "~/.ssh/id_ed25519",              # a key of its own for these nodes
    # "ssh_known_hosts_file": "~/.ssh/known_hosts",  # default; host-key checking stays on
}

pve_nodes = [
    ("pve1", dict(_ssh, ssh_hostname="192.0.2.11")),
    ("pve2", dict(_ssh, ssh_hostname="192.0.2.12")),
    ("pve3", dict(_ssh, ssh_hostname="192.0.2.13", fail2ban_sshd_maxretry=5)),
]
