"""After `pyinfra .lab/inventory.py deploy.py`: provoke bans from the attacker, show them, lift one.

Run by `make demo`. Talks to the nodes as an admin would: over SSH from this controller.
"""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import attack  # noqa: E402
from lab.lab import Lab  # noqa: E402


def on_node(lab, node, command):
    out = subprocess.run(lab.ssh_command(node, command), capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def say(text):
    print(f"\n==> {text}", flush=True)


def main():
    lab = Lab()
    nodes, attacker = lab.nodes(), lab.attacker()
    web, ssh = nodes[0], nodes[-1]
    say(
        f"attacker {attacker.ip}: 3 failed web logins on {web.name} ({web.variant}), "
        f"3 failed SSH logins on {ssh.name} ({ssh.variant})"
    )
    print("   web login HTTP codes:", attack.web_login(attacker, web, "root@pam", "guess", count=3))
    attack.ssh_login(attacker, ssh, "root", "guess", count=3)
    for node in nodes:
        say(f"{node.name} ({node.variant}): fail2ban-client status; status proxmox; status sshd")
        print(
            on_node(
                lab,
                node,
                "fail2ban-client status; fail2ban-client status proxmox; "
                "fail2ban-client status sshd",
            )
        )
    say("is the attacker refused now? (a ban recorded is not a ban enforced: we knock)")
    refused_web = not attack.port_open(attacker, web, 8006)
    refused_ssh = not attack.port_open(attacker, ssh, 22)
    print(f"   {web.name}:8006 refused: {refused_web}   {ssh.name}:22 refused: {refused_ssh}")
    say(
        f"the controller still reaches {ssh.name}: "
        + on_node(lab, ssh, "echo yes, as $(hostname)").strip()
    )
    say(f"unban on {web.name}: fail2ban-client set proxmox unbanip {attacker.ip}")
    print(on_node(lab, web, f"fail2ban-client set proxmox unbanip {attacker.ip}").strip())
    print(f"   {web.name}:8006 reachable again: {attack.port_open(attacker, web, 8006)}")
    ok = refused_web and refused_ssh
    print(
        "\nDemo "
        + ("passed: both bans enforced, unban works." if ok else "FAILED: a ban was not enforced.")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
