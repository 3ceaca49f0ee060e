"""fail2ban's state for verify.sh, in one Python process (each fail2ban-client run is a Python
start on the node: this replaces three).

    f2bstatus.py TIMEOUT [OUR_JAIL...]

Waits up to TIMEOUT seconds for fail2ban to answer ping and, right after a (re)start, for each of
our jails to be started with its source (fail2ban answers ping before it has added every jail),
then prints what `fail2ban-client -i` would for `status` and `status <jail>` of every jail, with
fail2ban's own client classes (its socket client and its Beautifier):

    ping=yes
    Fail2Ban v1.0.2
    fail2ban> Status ...
    fail2ban> Status for the jail: sshd ...

or `ping=no` when it does not answer in time."""

import sys
import time

from fail2ban.client.beautifier import Beautifier
from fail2ban.client.csocket import CSocket
from fail2ban.version import version

SOCKET = "/var/run/fail2ban/fail2ban.sock"


def ask(sock, command):
    code, answer = sock.send(command)
    if code != 0:
        raise RuntimeError(answer)
    beautifier = Beautifier()
    beautifier.setInputCmd(command)
    return beautifier.beautify(answer)


def settled(sock, jails):
    """True when every jail of `jails` runs and reads a source (a journal match or a file)."""
    running = dict(sock.send(["status"])[1]).get("Jail list", "")
    for jail in jails:
        if jail not in [j.strip() for j in running.split(",")]:
            return False
        code, answer = sock.send(["status", jail])
        filters = dict(answer).get("Filter", []) if code == 0 else []
        if not any(label in ("Journal matches", "File list") and value for label, value in filters):
            return False
    return True


def main(timeout, jails):
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = CSocket(SOCKET, timeout=10)
            if sock.send(["ping"])[0] == 0:
                break
        except Exception:  # noqa: BLE001 - no socket yet, refused, starting: ask again
            pass
        if time.monotonic() > deadline:
            print("ping=no")
            return
        time.sleep(0.25)
    while time.monotonic() < deadline and not settled(sock, jails):
        time.sleep(0.25)  # the jails are still being added: what is missing after this is reported
    print("ping=yes")
    print(f"Fail2Ban v{version}")
    status = sock.send(["status"])[1]
    jails = [j.strip() for j in dict(status).get("Jail list", "").split(",") if j.strip()]
    print("fail2ban> " + ask(sock, ["status"]))
    for jail in jails:
        try:
            print("fail2ban> " + ask(sock, ["status", jail]))
        except Exception:  # noqa: BLE001 - the jail went away between the two questions
            continue
    sock.close()


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
