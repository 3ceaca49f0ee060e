"""What the detection canary costs a node (issue "Alerts"): two pve8 nodes with metrics on, one
writing its canaries every 10 s (fail2ban_canary_interval = 10), one at the default (300 s), the
CPU time of each unit the canary touches (the events daemon that writes it and reads fail2ban's
log, journald that stores it, fail2ban that reads and ignores it) measured over the same window on
both. The difference, divided by the extra canaries, is one canary round's cost; times the
default's rounds per hour is what it costs a node. Writes bench/results/canary.json.

    python bench/canary.py [--seconds 300]
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.lab import Lab  # noqa: E402

UNITS = ("pve-fail2ban-events", "systemd-journald", "fail2ban")
FAST, DEFAULT = 10, 300  # seconds between two canary rounds


def cpu_seconds(node):
    """{unit: CPU seconds so far of its main process, threads included} (user + system time in
    /proc/PID/stat: the lab's containers keep no per-unit CPU accounting)."""
    found = {}
    for unit in UNITS:
        pid = node.sh(f"systemctl show -p MainPID --value {unit}", check=True)[1].strip()
        stat = node.sh(f"cat /proc/{int(pid)}/stat", check=True)[1]
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        ticks = int(node.sh("getconf CLK_TCK", check=True)[1])
        found[unit] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300, help="the measured window")
    args = parser.parse_args()
    lab = Lab()
    fast, slow = lab.up(variants=["pve8", "pve8"])
    try:
        data = {
            fast.name: {"fail2ban_metrics": "on", "fail2ban_canary_interval": FAST},
            slow.name: {"fail2ban_metrics": "on", "fail2ban_canary_interval": DEFAULT},
        }
        inventory = lab.write_inventory([fast, slow], data)
        run = lab.pyinfra(inventory=inventory)
        if run.returncode:
            sys.exit(run.text[-3000:])
        time.sleep(30)  # past the first canary round and the daemons' start
        before = {n.name: cpu_seconds(n) for n in (fast, slow)}
        time.sleep(args.seconds)
        after = {n.name: cpu_seconds(n) for n in (fast, slow)}
    finally:
        lab.down()
    used = {name: {u: round(after[name][u] - before[name][u], 4) for u in UNITS} for name in after}
    extra_rounds = args.seconds / FAST - args.seconds / DEFAULT
    per_round = (sum(used[fast.name].values()) - sum(used[slow.name].values())) / extra_rounds
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "window_seconds": args.seconds,
        "jails": 2,
        "cpu_seconds": {f"every {FAST} s": used[fast.name], f"every {DEFAULT} s": used[slow.name]},
        "cpu_ms_per_round": round(per_round * 1000, 2),
        "cpu_ms_per_hour_at_default": round(per_round * 1000 * 3600 / DEFAULT, 1),
        "share_of_one_core_at_default": f"{per_round / DEFAULT:.6%}",
    }
    out = ROOT / "bench/results/canary.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
