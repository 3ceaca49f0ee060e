"""Floods by a peer (issue 28), a benchmark, not a test: what each kind of unit of work a peer can
cause costs the node it floods.

    PVELAB_NS=flood8 python bench/floods.py

A lab of two nodes (pve8) deployed with the defaults. pve1 plays the hostile peer with its own
share key (the only thing it may do on pve2 is run the receiver):
- malformed: 100 connections of 2,000 lines of garbage each (a connection ends after 1,000);
- banned: one connection of 50,000 failures of an address pve2 has banned already;
- reconnects: 300 connections of one malformed line each;
and pve2 plays the hostile receiver for pve1's share service:
- answers: its receiver replaced by one that answers without end (`yes`), then a ban on pve1.
For each: the flooded node's CPU (its cgroup, the idle node's own use subtracted), the peak
resident memory of our processes there (the receivers, or the share service), the lines they
logged and the journal's growth. Writes bench/results/floods.json and prints a table.
"""

import json
import os
import shlex
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import node_cpu_seconds  # noqa: E402
from bench.soak import PROCESSES  # noqa: E402
from lab import config  # noqa: E402
from lab.lab import Lab  # noqa: E402
from pvefail2ban.scripts.nodelib import KEY, KNOWN_HOSTS  # noqa: E402
from pvefail2ban.share import RECEIVER  # noqa: E402

BANNED = "192.0.2.77"  # the address pve2 bans first (kind `banned`)
# what pve1 sends pve2's receiver with its own share key: {kind: (line, lines, connections)}
PEER_FLOODS = {
    "malformed": ("rm -rf /", 2000, 100),
    "banned": (f"attempt sshd {BANNED} 0.000", 50_000, 1),
    "reconnects": ("rm -rf /", 1, 300),
}


def peer_ssh(target):
    """The command line pve1's share service uses to reach `target`'s receiver."""
    return (
        f"ssh -F /dev/null -T -i {KEY} -o UserKnownHostsFile={KNOWN_HOSTS} "
        f"-o BatchMode=yes root@{target.ip}"
    )


def flood_script(target, connections):
    """A shell script for pve1: `connections` connections to target's receiver, each sending
    /tmp/flood (made first), answers thrown away. Bounded: each connection 120 s at most."""
    return (
        f"for i in $(seq {int(connections)}); do timeout 120 {peer_ssh(target)} "
        f"< /tmp/flood > /dev/null 2>&1; done"
    )


class Peak:
    """The peak of our processes' resident memory on `node`, of `kind`, sampled every 0.5 s."""

    def __init__(self, node, kind):
        self.node, self.kind, self.peak, self.done = node, kind, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            _, text = self.node.sh(f"python3 -c {shlex.quote(PROCESSES)}", timeout=30)
            try:
                row = json.loads(text.strip().splitlines()[-1])
                self.peak = max(self.peak, row[self.kind][1])
            except (ValueError, IndexError, KeyError):
                pass
            self.done.wait(0.5)

    def stop(self):
        self.done.set()
        self.thread.join(timeout=60)
        return self.peak


def journal_kib(node):
    return int(node.sh("du -sk /var/log/journal")[1].split()[0])


def logged(node, selector, since):
    """Lines logged on `node` since `since` (epoch seconds) by `selector` ("-t <identifier>" or
    "-u <unit>")."""
    _, out = node.sh(f"journalctl -q --no-pager {selector} --since @{int(since)} | wc -l")
    return int(out.strip() or 0)


def measure(lab, flooded, kind, selector, run):
    """Run `run()` (the flood) and return what it cost `flooded`."""
    nodes = lab.nodes()
    idle_start = node_cpu_seconds(nodes)[flooded.name]
    time.sleep(5)
    idle = (node_cpu_seconds(nodes)[flooded.name] - idle_start) / 5
    flooded.sh("journalctl --sync")
    journal, since = journal_kib(flooded), time.time() - 1
    cpu, peak, started = (
        node_cpu_seconds(nodes)[flooded.name],
        Peak(flooded, kind),
        time.monotonic(),
    )
    detail = run()
    seconds = time.monotonic() - started
    time.sleep(2)  # what the flood left running ends
    used = node_cpu_seconds(nodes)[flooded.name] - cpu - idle * (seconds + 2)
    flooded.sh("journalctl --sync")
    return {
        "seconds": round(seconds, 1),
        "cpu_s": round(used, 2),
        "peak_rss_kib": peak.stop(),
        "lines_logged": logged(flooded, selector, since),
        "journal_growth_kib": journal_kib(flooded) - journal,
        **detail,
    }


def main():
    if not config.NAMESPACE:
        sys.exit("run it in a namespace of its own: PVELAB_NS=flood8 python bench/floods.py")
    lab = Lab()
    results = {}
    try:
        peer, victim = lab.up(variants=["pve8", "pve8"])
        run = lab.pyinfra()
        if run.returncode != 0:
            sys.exit(run.report)

        def send(line, count, connections):
            """`connections` connections from pve1, each sending `count` times `line`."""
            peer.sh(f"yes {shlex.quote(line)} | head -n {int(count)} > /tmp/flood", check=True)
            peer.sh(flood_script(victim, connections), timeout=3600)
            return {"requests": count * connections, "connections": connections}

        victim.sh(f"fail2ban-client set sshd banip {BANNED}", check=True)  # for `banned`
        for kind, (line, count, connections) in PEER_FLOODS.items():
            print(f"{kind}...", flush=True)
            results[kind] = measure(
                lab, victim, "receivers", "-t pve-fail2ban-receive",
                lambda: send(line, count, connections),  # noqa: B023 - called at once
            )  # fmt: skip
        print("a receiver that answers without end...", flush=True)
        victim.sh(
            f"cp {RECEIVER} /root/receive.py.orig && printf '#!/bin/sh\\nexec yes \"ok sshd "
            f"192.0.2.1 made\"\\n' > {RECEIVER}",
            check=True,
        )

        def answers():
            peer.sh("fail2ban-client set sshd banip 192.0.2.88", check=True)
            time.sleep(30)  # the share service reads what comes, for 30 s
            connected = peer.sh(f"ss -Htn state established '( dport = :22 )' dst {victim.ip}")
            return {"connections_open_after_30s": len(connected[1].splitlines())}

        results["answers"] = measure(lab, peer, "share", "-u pve-fail2ban-share", answers)
        victim.sh(f"cp /root/receive.py.orig {RECEIVER}")
    finally:
        lab.down()
    out = ROOT / "bench/results/floods.json"
    payload = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        **results,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    for kind, figures in results.items():
        print(f"{kind:12} {figures}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
