"""The soak (issue 28), a benchmark, not a test: MINUTES of a distributed attack on 3 nodes.

    PVELAB_NS=soak9 python bench/soak.py [--minutes 60] [--per-minute 6]

A lab of three nodes (pve8, pve9, legacy) deployed with the defaults (cluster-wide bans and one
cluster-wide count) and the metrics on (the events service runs). Every minute, new attacker addresses (IPv6, added to the attacker's interface
for that minute) each make `maxretry` failed logins, half of them over SSH and half in the web UI,
each failure on the next node: no node sees more than one failure of an address, so only the
cluster's one count bans it. Then, bounded, every address of the minute must be banned on every
node ("lost": an address missing on a node after 50 s). Every minute, per node: the resident
memory and open file descriptors of fail2ban-server, the share service, its SSH links, the
receivers and the events service; the size of /var/lib/pve-fail2ban, fail2ban's database, the journal and /var/log;
the node's CPU (its cgroup). Bans end after their bantime (10 min), so a steady attack should
give flat figures. Writes bench/results/soak.json and prints the first and the last ten minutes
side by side. The namespace `soak9` keeps it apart from the test workers' labs (its own network).
"""

import argparse
import ipaddress
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import node_cpu_seconds  # noqa: E402
from lab import config  # noqa: E402
from lab.lab import Lab  # noqa: E402

MAXRETRY = 3  # defaults.py: fail2ban_maxretry (sshd's MaxAuthTries in the lab) and the products'
BAN_WAIT = 50  # seconds an address of a minute may take to be banned on every node
# what each process is, by its command line: fail2ban's server and our node daemons
KINDS = {
    "fail2ban": "fail2ban-server",
    "share": "pve-fail2ban/share.py",
    "links": "pve-fail2ban/share/id_ed25519",  # the share service's ssh client, one per peer
    "receivers": "pve-fail2ban/receive.py",
    "events": "pve-fail2ban-events/events.py",
}
# one Python process on the node: {kind: [processes, RSS KiB, open fds]} (read from /proc)
PROCESSES = f"""
import json, os
kinds = {KINDS!r}
out = {{kind: [0, 0, 0] for kind in kinds}}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{{pid}}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        kind = next((k for k, mark in kinds.items() if mark in cmd), None)
        if kind is None or cmd.startswith(("sh ", "bash ")):
            continue
        rss = next(int(line.split()[1]) for line in open(f"/proc/{{pid}}/status")
                   if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{{pid}}/fd"))
    except (OSError, StopIteration):
        continue  # gone meanwhile
    row = out[kind]
    row[0] += 1; row[1] += rss; row[2] += fds
print(json.dumps(out))
"""
SIZES = (
    "du -sk /var/lib/pve-fail2ban /var/lib/fail2ban /var/log/journal /run/log/journal /var/log "
    "2>/dev/null"
)
BANNED = (
    "for j in $(fail2ban-client status | sed -n 's/.*Jail list:\\s*//p' | tr ',' ' '); "
    "do fail2ban-client get $j banip; done"
)


def attack_addresses(minute, count, subnet6):
    """The attacker's addresses of `minute`: fresh ones in the lab's /64, never the nodes'."""
    net = ipaddress.ip_network(subnet6)
    return [str(net[0xA0000 + minute * 256 + i]) for i in range(count)]


def wave(attacker, nodes, addresses):
    """Each address makes MAXRETRY failures, each on the next node: even ones over SSH, odd ones in
    the web UI. All addresses at once, in the background of one shell; bounded by time-outs."""
    jobs = []
    for i, source in enumerate(addresses):
        steps = []
        for k in range(MAXRETRY):
            target = nodes[(i + k) % len(nodes)].ip6
            if i % 2 == 0:
                steps.append(
                    f"sshpass -p wrong ssh -n -b {source} -o StrictHostKeyChecking=no "
                    "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 "
                    "-o PreferredAuthentications=password -o PubkeyAuthentication=no "
                    f"-o NumberOfPasswordPrompts=1 root@{target} true"
                )
            else:
                url = shlex.quote(f"https://[{target}]:8006/api2/json/access/ticket")
                steps.append(
                    f"curl -gsk -o /dev/null --max-time 10 --interface {source} "
                    "--data-urlencode username=root@pam --data-urlencode password=wrong "
                    f"{url}"
                )
        jobs.append("( " + "; ".join(f"{step} >/dev/null 2>&1" for step in steps) + " ) &")
    attacker.sh(" ".join(jobs) + " wait", timeout=120)


def set_addresses(attacker, addresses, add):
    """Add (or delete) `addresses` on the attacker's interface, from this machine in the
    attacker's network namespace (its container has no NET_ADMIN of its own; the bench runs as
    root, as the lab does)."""
    attacker.container.reload()
    pid = str(attacker.container.attrs["State"]["Pid"])
    for address in addresses:
        done = subprocess.run(
            ["nsenter", "-t", pid, "-n", "ip", "-6", "addr", "add" if add else "del",
             f"{address}/64", "dev", "eth0", "nodad"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if add and done.returncode != 0:
            raise RuntimeError(f"attacker address {address} not added: {done.stderr.strip()}")


def banned_everywhere(nodes, addresses, timeout=BAN_WAIT):
    """(seconds until every address is banned on every node, {node: addresses missing then})."""
    started, missing = time.monotonic(), {}
    while True:
        missing = {}
        for node in nodes:
            seen = set(node.sh(BANNED, timeout=60)[1].split())
            gone = [a for a in addresses if a not in seen]
            if gone:
                missing[node.name] = gone
        elapsed = time.monotonic() - started
        if not missing or elapsed > timeout:
            return elapsed, missing
        time.sleep(1)


def sample(nodes):
    """{node: {kind: [processes, RSS KiB, fds], "sizes": {path: KiB}}} now."""
    out = {}
    for node in nodes:
        _, text = node.sh(f"python3 -c {shlex.quote(PROCESSES)}", timeout=60)
        row = json.loads(text.strip().splitlines()[-1])
        _, sizes = node.sh(SIZES, timeout=60)
        row["sizes"] = {path: int(kib) for kib, path in (s.split() for s in sizes.splitlines())}
        out[node.name] = row
    return out


def summary(minutes, first, last):
    """Medians of the samples of the first and of the last `window` minutes, per node and figure."""
    rows = []
    for name in minutes[0]["nodes"]:
        for kind in KINDS:
            for index, what in ((1, "RSS KiB"), (2, "fds")):
                a = statistics.median(m["nodes"][name][kind][index] for m in first)
                b = statistics.median(m["nodes"][name][kind][index] for m in last)
                rows.append((name, f"{kind} {what}", a, b))
        for path in minutes[0]["nodes"][name]["sizes"]:
            a = statistics.median(m["nodes"][name]["sizes"].get(path, 0) for m in first)
            b = statistics.median(m["nodes"][name]["sizes"].get(path, 0) for m in last)
            rows.append((name, f"{path} KiB", a, b))
        a = statistics.median(m["cpu"][name] for m in first)
        b = statistics.median(m["cpu"][name] for m in last)
        rows.append((name, "CPU s per minute", round(a, 2), round(b, 2)))
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--per-minute", type=int, default=6)
    args = parser.parse_args()
    if not config.NAMESPACE:
        sys.exit("run it in a namespace of its own: PVELAB_NS=soak9 python bench/soak.py")
    lab = Lab()
    minutes = []
    try:
        nodes = lab.up(3)
        attacker = lab.attacker()
        run = lab.pyinfra("--data", "fail2ban_metrics=on")  # the events service runs too
        if run.returncode != 0:
            sys.exit(run.report)
        print(f"soak: {args.minutes} min, {args.per_minute} new addresses a minute", flush=True)
        cpu = node_cpu_seconds(nodes)
        for minute in range(args.minutes):
            start = time.monotonic()
            addresses = attack_addresses(minute, args.per_minute, config.SUBNET6)
            set_addresses(attacker, addresses, add=True)
            wave(attacker, nodes, addresses)
            seconds, missing = banned_everywhere(nodes, addresses)
            set_addresses(attacker, addresses, add=False)
            now_cpu = node_cpu_seconds(nodes)
            record = {
                "minute": minute,
                "banned_after_s": round(seconds, 1),
                "lost": missing,
                "cpu": {n: now_cpu[n] - cpu[n] for n in cpu},
                "nodes": sample(nodes),
            }
            cpu = now_cpu
            minutes.append(record)
            print(
                f"minute {minute}: banned everywhere {seconds:.1f} s after the wave, lost "
                f"{sum(len(v) for v in missing.values())}; fail2ban RSS "
                + ", ".join(f"{n} {r['fail2ban'][1]}" for n, r in record["nodes"].items()),
                flush=True,
            )
            time.sleep(max(0.0, start + 60 - time.monotonic()))
    finally:
        lab.down()
    window = max(1, min(10, len(minutes) // 3))
    rows = summary(minutes, minutes[:window], minutes[-window:])
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "minutes": args.minutes,
        "per_minute": args.per_minute,
        "addresses": args.minutes * args.per_minute,
        "lost": sum(sum(len(v) for v in m["lost"].values()) for m in minutes),
        "banned_after_s": {
            "median": statistics.median(m["banned_after_s"] for m in minutes),
            "max": max(m["banned_after_s"] for m in minutes),
        },
        "window_minutes": window,
        "first_vs_last": rows,
        "samples": minutes,
    }
    out = ROOT / "bench/results/soak.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"addresses {result['addresses']}, lost {result['lost']}, banned everywhere after "
        f"{result['banned_after_s']} s"
    )
    print(f"medians of the first and the last {window} minutes:")
    for name, what, a, b in rows:
        print(f"  {name:5} {what:32} {a:>10} {b:>10}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
