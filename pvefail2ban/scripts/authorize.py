"""Put the peers' share keys into root's authorized_keys, touching no line we did not add.

    python3 authorize.py '{"want": {name: line}, "keep": [name, ...]}'

Our lines end in the comment `pve-fail2ban-share@<node>`. Every one of them is replaced by
`want`'s line for that node, kept as it is when the node is in `keep` (a node of the inventory
whose key could not be read this run), or dropped (a node no longer in the inventory). Every
other line stays byte for byte, in its place.

On Proxmox VE, /root/.ssh/authorized_keys is a symlink into /etc/pve/priv/ (pmxcfs), one file
for the whole cluster: the link is followed and the file it points to is replaced in one rename
in its own directory, and the deploy runs this on one node at a time (never two read-modify-write
cycles on the shared file at once). Prints `changed` or `unchanged`.
"""

import json
import os
import sys

PATH = "/root/.ssh/authorized_keys"
MARK = " pve-fail2ban-share@"


def owner(line):
    """The node an authorized_keys line of ours is for, else None."""
    head, mark, name = line.rstrip("\n").rpartition(MARK)
    return name if mark and head and " " not in name else None


def edited(text, want, keep):
    """`text` with our lines replaced by `want` ({node: line}), `keep` nodes' lines kept."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    out = [line for line in lines if owner(line) is None or owner(line) in keep]
    out += [want[name] + "\n" for name in sorted(want)]
    return "".join(out)


def main(request):
    want, keep = request["want"], set(request["keep"]) - set(request["want"])
    real = os.path.realpath(PATH)
    try:
        with open(real) as file:
            text = file.read()
    except FileNotFoundError:
        text = ""
    new = edited(text, want, keep)
    if new == text:
        print("unchanged")
        return
    os.makedirs(os.path.dirname(real), mode=0o700, exist_ok=True)
    temp = f"{real}.pve-fail2ban.{os.getpid()}"
    with open(temp, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(new)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, real)
    print("changed")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
