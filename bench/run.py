"""Benchmarks on the lab (issue "Benchmarks"). Writes bench/results/latest.json and prints a table.

    python bench/run.py [--nodes 3,10] [--cost-nodes 3,10,30] [--trials 5]
                        [--skip converge,ansible,ban,propagation,counting,filter]

- converge (--cost-nodes): fresh nodes, cold converge (apt install included) and no-op re-runs,
  for each N; the controller's CPU (total, per node, per added node) and each node's in a no-op
  run; SSH commands per node in a no-op run (pyinfra -vv prints each command it sends);
- ansible: the same job by ansible-playbook the way the popular roles do it
  (bench/ansible_compare.py), each tool on fresh nodes: cold and no-op, and our time / Ansible's;
- ban: seconds from the maxretry-th failed login to the attacker's connection being refused, SSH
  and web, on a journal node (pve8) and a file-log node (legacy), and PBS (8007) and PMG (8006)
  web logins on a pbs and a pmg node (journal), median and max of the trials;
- propagation: cluster-wide bans, from the origin's `Ban` log line (web logins) to the attacker
  refused on every other node (port 8006 probed from the attacker), median and max, each N;
- counting: cluster-wide counting (issue 24), from the web login failure that completes maxretry
  in the cluster (maxretry - 1 made on other nodes first) to the attacker refused on every node,
  median and max, each N; and the extra node CPU per shared failure (on against off, 3 nodes);
- filter: fail2ban-regex over a generated 200,000-line daemon.log, ours against the guide's,
  alternating runs, with both match counts.
"""

import argparse
import ipaddress
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ansible_compare import (  # noqa: E402
    SAME_JOB,
    ansible_run,
    ensure_ansible,
    protected,
    write_inventory,
)
from lab.lab import Lab  # noqa: E402

GUIDE_FILTER = (
    "[Definition]\nfailregex = pvedaemon\\[.*authentication (verification )?failure; "
    "rhost=<HOST> user=.* msg=.*\nignoreregex =\n"
)


def timed(fn):
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


CGROUP_USAGE = (
    "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",  # cgroup v1: nanoseconds
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",  # cgroup v2: a usage_usec line
)


def node_cpu_seconds(nodes):
    """CPU seconds each node's container has used so far, read from its cgroup's accounting."""
    found = {}
    for node in nodes:
        for pattern in CGROUP_USAGE:
            path = Path(pattern.format(id=node.container.id))
            if path.exists():
                text = path.read_text()
                found[node.name] = (
                    int(text) / 1e9
                    if path.name == "cpuacct.usage"
                    else int(re.search(r"usage_usec (\d+)", text).group(1)) / 1e6
                )
                break
        else:
            raise RuntimeError(f"no cgroup CPU accounting found for {node.name}")
    return found


def measured_run(lab, run_once=None):
    """One run of `run_once` (default: our deploy): (wall seconds, controller CPU seconds of the
    tool's processes, node-side CPU seconds per node beyond what the idle nodes use meanwhile)."""
    nodes = lab.nodes()
    idle_start = node_cpu_seconds(nodes)
    time.sleep(2)
    idle = statistics.median(node_cpu_seconds(nodes)[n] - idle_start[n] for n in idle_start) / 2
    before_nodes, before = node_cpu_seconds(nodes), resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, run = timed(run_once or lab.pyinfra)
    after, after_nodes = resource.getrusage(resource.RUSAGE_CHILDREN), node_cpu_seconds(nodes)
    assert run.returncode == 0, run.text[-3000:]
    controller = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    per_node = statistics.median(
        after_nodes[n] - before_nodes[n] - idle * seconds for n in before_nodes
    )
    return seconds, controller, max(per_node, 0.0)


def converge(lab, counts, reruns=3):
    out = {}
    for n in counts:
        lab.up(n)
        cold, run = timed(lab.pyinfra)
        assert run.returncode == 0, run.text[-3000:]
        runs = [measured_run(lab) for _ in range(reruns)]
        verbose = lab.pyinfra("-vv")
        commands = len(re.findall(r"^\[pve1\]\s+>>> ", verbose.text, re.M))
        noop = statistics.median(r[0] for r in runs)
        controller = statistics.median(r[1] for r in runs) / n
        node_cpu = statistics.median(r[2] for r in runs)
        out[n] = {
            "cold_s": round(cold, 1),
            "noop_s": round(noop, 2),
            "noop_runs_s": [round(r[0], 2) for r in runs],
            "controller_cpu_s": round(controller * n, 3),
            "controller_cpu_per_node_s": round(controller, 3),
            "node_cpu_per_node_noop_s": round(node_cpu, 3),
            "ssh_commands_per_node_noop": commands,
        }
        print(
            f"  N={n}: cold {cold:.1f}s, no-op {noop:.2f}s, controller CPU {controller * 1000:.0f} ms/node, "
            f"node CPU {node_cpu:.3f}s/node, {commands} SSH commands/node",
            flush=True,
        )
    # what each added node costs the controller: the growth of its CPU seconds from one N to the next
    # (the fixed part, pyinfra's start and imports, is the same at every N)
    counts = sorted(out)
    for a, b in zip(counts, counts[1:], strict=False):
        added = (out[b]["controller_cpu_s"] - out[a]["controller_cpu_s"]) / (b - a)
        out[b]["controller_cpu_per_added_node_s"] = round(added, 3)
        print(f"  controller CPU per added node, N={a} -> {b}: {added * 1000:.0f} ms", flush=True)
    return out


def versus_ansible(lab, counts, reruns=3):
    """Ours and Ansible's (bench/ansible_compare.py), each on fresh nodes: cold converge, then the
    median of `reruns` no-op runs; both must leave every node protected before a time counts."""
    tool, out = ensure_ansible(), {}
    same_job = [arg for key, value in SAME_JOB.items() for arg in ("--data", f"{key}={value}")]
    for n in counts:
        figures = {}
        for name in ("ours", "ansible"):
            lab.up(n)
            if name == "ours":
                run_once = lambda: lab.pyinfra(*same_job)  # noqa: E731
            else:
                folder = Path(tempfile.mkdtemp(prefix="pvebench-ansible-"))
                inventory, config = write_inventory(lab, lab.nodes(), folder)
                run_once = ansible_run(tool, inventory, config)
            cold, run = timed(run_once)
            assert run.returncode == 0, f"{name}: {run.text[-3000:]}"
            failing = protected(lab.nodes())
            assert not failing, f"{name} left {failing} unprotected"
            runs = [measured_run(lab, run_once) for _ in range(reruns)]
            assert not protected(lab.nodes()), f"{name}: a no-op run unprotected a node"
            figures[name] = {
                "cold_s": round(cold, 1),
                "noop_s": round(statistics.median(r[0] for r in runs), 2),
                "noop_runs_s": [round(r[0], 2) for r in runs],
                "controller_cpu_per_node_s": round(statistics.median(r[1] for r in runs) / n, 3),
                "node_cpu_per_node_noop_s": round(statistics.median(r[2] for r in runs), 3),
            }
        ours, theirs = figures["ours"], figures["ansible"]
        figures["ratio_cold"] = round(ours["cold_s"] / theirs["cold_s"], 3)
        figures["ratio_noop"] = round(ours["noop_s"] / theirs["noop_s"], 3)
        out[n] = figures
        print(
            f"  N={n}: cold ours {ours['cold_s']}s / ansible {theirs['cold_s']}s = "
            f"{figures['ratio_cold']}x; no-op ours {ours['noop_s']}s / ansible "
            f"{theirs['noop_s']}s = {figures['ratio_noop']}x",
            flush=True,
        )
    return out


FAILURE_LINES = {
    "ssh": r"Failed password|Invalid user",
    "web": r"pvedaemon\[\d+\]: authentication failure",
    "pbs": r"proxmox-backup-api\[\d+\]: authentication failure",
    "pmg": r"pmgdaemon\[\d+\]: authentication failure",
}
# web logins: kind -> (port, the unit whose journal holds the failure line)
WEB_LOGINS = {
    "web": (8006, "pvedaemon"),
    "pbs": (8007, "proxmox-backup"),
    "pmg": (8006, "pmgdaemon"),
}
# the node variants time_to_ban measures, and what it measures on each
BAN_KINDS = {"pve8": ("ssh", "web"), "legacy": ("ssh", "web"), "pbs": ("pbs",), "pmg": ("pmg",)}


def ban_trial(attacker, node, kind, maxretry=3):
    """One trial. t1: the attacker's first refused connection (measured inside the attacker, no docker
    exec latency). t0: the journal time of the last failure line the node wrote before t1 -- the
    failure that tipped the ban. Containers share the kernel clock, so t1 - t0 is comparable."""
    port, unit = WEB_LOGINS.get(kind, (22, "ssh"))
    if kind == "ssh":
        fail = (
            f"sshpass -p guess ssh -n -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"-o ConnectTimeout=5 -o PreferredAuthentications=password -o PubkeyAuthentication=no "
            f"-o NumberOfPasswordPrompts=1 root@{node.ip} true 2>/dev/null"
        )
    else:
        fail = (
            f"curl -sk -o /dev/null --max-time 5 -d 'username=root@pam&password=guess' "
            f"https://{node.ip}:{port}/api2/json/access/ticket"
        )
    since = node.sh("date +%s.%N")[1].strip()
    # PVE answers a failed web login only after 3 s: an attacker waiting for that answer would time
    # its own wait, not the ban. The web logins go on in the background (still one after the other)
    # while the attacker probes the port; SSH logins are made first, as before.
    attempts = (
        f"( for i in $(seq {maxretry}); do {fail}; done ) & "
        if kind != "ssh"
        else (f"for i in $(seq {maxretry}); do {fail}; done; ")
    )
    script = (
        f"{attempts}n=0; "
        f"while timeout 1 bash -c 'exec 3<>/dev/tcp/{node.ip}/{port}' 2>/dev/null; do "
        f'n=$((n+1)); [ $n -gt 2000 ] && break; sleep 0.01; done; echo "$(date +%s.%N) $n"; wait'
    )
    _, out = attacker.sh(script, timeout=120)
    t1, polls = out.split()[-2:]
    if int(polls) > 2000:
        raise RuntimeError(f"{node.name} {kind}: attacker never refused")
    _, journal = node.sh(
        f"journalctl -q -o short-unix --no-pager -u {unit} --since @{since.split('.')[0]}"
    )
    times = [
        float(line.split()[0])
        for line in journal.splitlines()
        if re.search(FAILURE_LINES[kind], line) and float(line.split()[0]) <= float(t1)
    ]
    return float(t1) - max(times)


def time_to_ban(lab, trials):
    lab.up(variants=list(BAN_KINDS))
    run = lab.pyinfra()
    assert run.returncode == 0, run.text[-3000:]
    attacker, results = lab.attacker(), {}
    for node in lab.nodes():
        backend = "file" if node.variant == "legacy" else "journal"
        for kind in BAN_KINDS[node.variant]:
            samples = []
            for _ in range(trials):
                node.sh("fail2ban-client unban --all")
                time.sleep(0.5)
                samples.append(ban_trial(attacker, node, kind))
            key = f"{kind}/{backend}"
            results[key] = {
                "median_s": round(statistics.median(samples), 3),
                "max_s": round(max(samples), 3),
                "trials_s": [round(s, 3) for s in samples],
            }
            print(
                f"  {key:13} median {statistics.median(samples):.3f}s max {max(samples):.3f}s",
                flush=True,
            )
        node.sh("fail2ban-client unban --all")
    return results


# Run in the attacker: probe every address's port, a round every 30 ms, and print when each first
# refuses; give up after 60 s. One process, and not faster: every probe is a connection the node's
# simulated PVE accepts, and 10 nodes probed every 10 ms took a whole core of this 2-core machine
# from the nodes being measured.
PROBE = """
import socket, sys, time
port, left, deadline = int(sys.argv[1]), set(sys.argv[2:]), time.time() + 60
while left and time.time() < deadline:
    for ip in sorted(left):
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
        except ConnectionRefusedError:
            print(ip, time.time(), flush=True)
            left.discard(ip)
        except OSError:
            pass
    time.sleep(0.03)
"""


def refused_while(attacker, failures, nodes):
    """{node: when the attacker's first connection to its port 8006 was refused} while the shell
    command `failures` runs in the attacker's background (PROBE)."""
    _, out = attacker.sh(
        f"( {failures} ) & python3 -c {shlex.quote(PROBE)} 8006 {' '.join(n.ip for n in nodes)}; "
        "wait",
        timeout=180,
    )
    names = {n.ip: n.name for n in nodes}
    refused = {names[ip]: float(when) for ip, when in (line.split() for line in out.splitlines())}
    missing = sorted(set(names.values()) - set(refused))
    if missing:
        raise RuntimeError(f"the attacker was never refused by {', '.join(missing)}")
    return refused


def propagation_trial(lab, origin, peers, attacker, maxretry=3):
    """One trial: the attacker fails `maxretry` web logins on `origin` (in the background: PVE
    answers a failure after 3 s), while probing every peer's port 8006. Returns {peer: seconds
    from the origin's `[proxmox] Ban` log line to the attacker's first refused connection to that
    peer}. (Port 8006, not 22: OpenSSH 9.8+ penalises a source that connects without logging in,
    and then drops its logins unlogged.)"""
    fail = (
        "curl -sk -o /dev/null --max-time 10 -d 'username=root@pam&password=guess' "
        f"https://{origin.ip}:8006/api2/json/access/ticket"
    )
    refused = refused_while(attacker, f"for i in $(seq {maxretry}); do {fail}; done", peers)
    stamp = origin.sh(
        f"grep -h '\\[proxmox\\] Ban {attacker.ip}$' /var/log/fail2ban.log | tail -n 1 | cut -c1-23"
    )[1].strip()
    banned_at = float(origin.sh(f"date -d '{stamp.replace(',', '.')}' +%s.%N")[1])
    return {name: when - banned_at for name, when in refused.items()}


def propagation(lab, counts, trials):
    """Cluster-wide bans: from the origin's ban to the attacker refused on every peer, N nodes.
    Cluster-wide counting off: its failures would open the connections to the peers before the
    ban (the `counting` part times that); here each ban opens them (the slow case)."""
    results = {}
    for count in counts:
        lab.up(count)
        run = lab.pyinfra("--data", "fail2ban_cluster_failures=False")
        assert run.returncode == 0, run.text[-3000:]
        nodes, attacker = lab.nodes(), lab.attacker()
        everywhere, each = [], []
        for trial in range(trials):
            origin = nodes[trial % len(nodes)]
            peers = [n for n in nodes if n is not origin]
            latencies = propagation_trial(lab, origin, peers, attacker)
            everywhere.append(max(latencies.values()))
            each += latencies.values()
            for node in nodes:
                node.sh("fail2ban-client unban --all")
            time.sleep(1)
        results[str(count)] = {
            "median_s": round(statistics.median(everywhere), 3),
            "max_s": round(max(everywhere), 3),
            "trials_s": [round(s, 3) for s in everywhere],
            "per_peer_median_s": round(statistics.median(each), 3),
        }
        print(
            f"  N={count:<3} refused on every peer: median {statistics.median(everywhere):.3f}s "
            f"max {max(everywhere):.3f}s ({trials} trials)",
            flush=True,
        )
    return results


# The counting bench's settings: its trials reuse the attacker's one address, and an unban does not
# make fail2ban forget failures, so each trial waits out a short findtime (the time measured does
# not depend on it: failures are sent at once, whatever findtime)
COUNT_FINDTIME = 20
WEB_FAIL = (
    "curl -sk -o /dev/null --max-time 10 -d 'username=root@pam&password=guess' "
    "https://{ip}:8006/api2/json/access/ticket"
)


def total_failed(node, jail):
    text = node.sh(f"fail2ban-client status {jail}")[1]
    return int(re.search(r"Total failed:\s+(\d+)", text).group(1))


def counting_trial(nodes, attacker, trial, maxretry=3):
    """One trial of cluster-wide counting: maxretry - 1 web login failures on as many nodes, then
    the completing one on the next node, while the attacker probes every node's port 8006. Returns
    {node: seconds from the completing failure's journal line to the attacker's first refused
    connection there}."""
    first = [nodes[(trial + i) % len(nodes)] for i in range(maxretry - 1)]
    last = nodes[(trial + maxretry - 1) % len(nodes)]
    before = total_failed(last, "proxmox")
    attacker.sh(" & ".join(WEB_FAIL.format(ip=n.ip) for n in first) + " & wait", timeout=30)
    deadline = time.monotonic() + 15
    while total_failed(last, "proxmox") < before + len(first):  # counted there too
        if time.monotonic() > deadline:
            raise RuntimeError(f"{last.name} never counted the failures made on the other nodes")
        time.sleep(0.2)
    since = last.sh("date +%s")[1].strip()
    refused = refused_while(attacker, WEB_FAIL.format(ip=last.ip), nodes)
    journal = last.sh(f"journalctl -q -o short-unix --no-pager -u pvedaemon --since @{since}")[1]
    failures = [
        float(line.split()[0])
        for line in journal.splitlines()
        if re.search(FAILURE_LINES["web"], line) and attacker.ip in line
    ]
    if not failures:
        raise RuntimeError(f"{last.name} logged no failure since {since}: {journal[-1000:]!r}")
    failed_at = max(failures)
    return {name: when - failed_at for name, when in refused.items()}


def shared_failure_cpu(lab, count=1000, rounds=3):
    """Node CPU (all nodes, cgroup accounting, idle subtracted) for `count` SSH failures on one
    node from as many addresses (one each: no ban), cluster-wide counting on and then off,
    `rounds` times each (alternating: the figures move by tenths of a millisecond from one run to
    the next); the difference of the medians per failure is what sharing one failure costs."""
    nodes = lab.nodes()
    origin, last = nodes[0], nodes[-1]
    costs = {True: [], False: []}
    for round_ in range(rounds):
        for shared in (True, False):
            run = lab.pyinfra("--data", f"fail2ban_cluster_failures={shared}")
            assert run.returncode == 0, run.text[-3000:]
            hosts = ipaddress.ip_network(f"2001:db8:c{round_}{int(shared)}::/64")
            lines = "".join(
                f"Failed password for root from {hosts[i]} port 4242 ssh2\n"
                for i in range(1, count + 1)
            )
            origin.sh(f"printf %s {shlex.quote(lines)} > /tmp/failures", check=True)
            watched = last if shared else origin  # where the last of them is counted
            before = total_failed(watched, "sshd")
            idle_start = node_cpu_seconds(nodes)
            time.sleep(2)
            idle = {n: (v - idle_start[n]) / 2 for n, v in node_cpu_seconds(nodes).items()}
            start, started = node_cpu_seconds(nodes), time.monotonic()
            origin.sh("logger -t sshd -p authpriv.info -f /tmp/failures", check=True)
            deadline = time.monotonic() + 120
            while total_failed(watched, "sshd") < before + count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{watched.name} never counted the {count} failures")
                time.sleep(0.5)
            time.sleep(2)  # what follows the last one (answers, the connection lingering)
            end, seconds = node_cpu_seconds(nodes), time.monotonic() - started
            costs[shared].append({n: end[n] - start[n] - idle[n] * seconds for n in end})
    median = {
        shared: {n: statistics.median(c[n] for c in runs) for n in runs[0]}
        for shared, runs in costs.items()
    }
    extra = {n: median[True][n] - median[False][n] for n in median[True]}
    peers = [n.name for n in nodes[1:]]
    return {
        "failures": count,
        "rounds": rounds,
        "nodes": len(nodes),
        "extra_ms_per_failure_cluster": round(sum(extra.values()) / count * 1000, 3),
        "extra_ms_per_failure_origin": round(extra[origin.name] / count * 1000, 3),
        "extra_ms_per_failure_per_peer": round(
            statistics.median(extra[n] for n in peers) / count * 1000, 3
        ),
        "cluster_cpu_s_on": [round(sum(c.values()), 3) for c in costs[True]],
        "cluster_cpu_s_off": [round(sum(c.values()), 3) for c in costs[False]],
    }


def forget_the_attacker(nodes):
    """Each node unbans everything and forgets every failure, as before the first trial: fail2ban
    forgets failures only by its own estimate (a rate over findtime, cleaned up now and then), so
    it is restarted once findtime is over (it reads the journal back findtime on start)."""
    for node in nodes:
        node.sh("fail2ban-client unban --all")
    time.sleep(COUNT_FINDTIME + 1)
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda n: n.sh("systemctl restart fail2ban", check=True, timeout=60), nodes))
    for node in nodes:
        deadline = time.monotonic() + 30
        while node.sh("fail2ban-client ping")[0] != 0 and time.monotonic() < deadline:
            time.sleep(0.5)


def counting(lab, counts, trials):
    """Cluster-wide counting: from the failure that completes maxretry in the cluster to the
    attacker refused on every node, N nodes; and the node CPU one shared failure costs (3 nodes)."""
    results = {}
    for count in counts:
        lab.up(variants=["pve8"] * count)  # journal nodes: the failure's time read from the journal
        run = lab.pyinfra("--data", f"fail2ban_findtime={COUNT_FINDTIME}")
        assert run.returncode == 0, run.text[-3000:]
        nodes, attacker = lab.nodes(), lab.attacker()
        everywhere = []
        for trial in range(trials):
            everywhere.append(max(counting_trial(nodes, attacker, trial).values()))
            forget_the_attacker(nodes)
        results[str(count)] = {
            "median_s": round(statistics.median(everywhere), 3),
            "max_s": round(max(everywhere), 3),
            "trials_s": [round(s, 3) for s in everywhere],
        }
        print(
            f"  N={count:<3} refused on every node: median {statistics.median(everywhere):.3f}s "
            f"max {max(everywhere):.3f}s ({trials} trials)",
            flush=True,
        )
        if count == counts[0]:
            results["cpu"] = shared_failure_cpu(lab)
            print(f"  CPU per shared failure: {results['cpu']}", flush=True)
    return results


def filter_cost(rounds=7, lines=200_000):
    tool = subprocess.run(
        [str(ROOT / "scripts/ensure-fail2ban-regex.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        log, guide = Path(tmp, "daemon.log"), Path(tmp, "guide.conf")
        subprocess.run(
            [sys.executable, str(ROOT / "bench/gen_daemon_log.py"), str(log), str(lines)],
            check=True,
        )
        guide.write_text(GUIDE_FILTER)
        filters = {
            "ours": ROOT / "pvefail2ban/files/etc/fail2ban/filter.d/proxmox.conf",
            "guide": guide,
        }
        wall, cpu, matched = {"ours": [], "guide": []}, {"ours": [], "guide": []}, {}
        for _ in range(rounds):
            for name, path in filters.items():  # alternating runs
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                seconds, out = timed(
                    lambda path=path: (
                        subprocess.run(
                            [tool, "--print-no-missed", str(log), str(path)],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                    )
                )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                wall[name].append(seconds)
                cpu[name].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )
                matched[name] = int(
                    re.search(r"^Lines: \d+ lines, \d+ ignored, (\d+) matched", out, re.M).group(1)
                )
    med = {k: {n: statistics.median(v[n]) for n in v} for k, v in (("wall", wall), ("cpu", cpu))}
    # The ratio is taken on CPU time (user + sys of fail2ban-regex): on a shared 2-core machine it
    # moves far less from run to run than wall time. Both are recorded.
    ratio = med["cpu"]["ours"] / med["cpu"]["guide"]
    result = {
        "lines": lines,
        "rounds": rounds,
        "ours_cpu_s": round(med["cpu"]["ours"], 2),
        "guide_cpu_s": round(med["cpu"]["guide"], 2),
        "ours_wall_s": round(med["wall"]["ours"], 2),
        "guide_wall_s": round(med["wall"]["guide"], 2),
        "ratio": round(ratio, 3),
        "ours_matched": matched["ours"],
        "guide_matched": matched["guide"],
    }
    print(
        f"  filter: ours {med['cpu']['ours']:.2f}s CPU ({matched['ours']} matched), guide "
        f"{med['cpu']['guide']:.2f}s CPU ({matched['guide']} matched), ratio {ratio:.2f}",
        flush=True,
    )
    return result


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="3,10")  # ansible, propagation
    parser.add_argument("--cost-nodes", default="3,10,30")  # converge: what each node costs
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    out = ROOT / "bench/results/latest.json"
    results = (
        json.loads(out.read_text()) if out.exists() else {}
    )  # skipped parts keep their last figures
    results.update(
        {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count()}
    )
    lab = Lab()
    try:
        if "filter" not in skip:
            print("filter cost:", flush=True)
            results["filter"] = filter_cost()
        if "converge" not in skip:
            print("converge:", flush=True)
            results["converge"] = converge(lab, [int(n) for n in args.cost_nodes.split(",")])
        if "ansible" not in skip:
            print("side by side with Ansible:", flush=True)
            results["ansible"] = versus_ansible(lab, [int(n) for n in args.nodes.split(",")])
        if "ban" not in skip:
            print("time to ban:", flush=True)
            results["time_to_ban"] = time_to_ban(lab, args.trials)
        if "counting" not in skip:
            print("cluster-wide counting:", flush=True)
            results["counting"] = counting(
                lab, [int(n) for n in args.nodes.split(",")], args.trials
            )
        if "propagation" not in skip:
            print("cluster-wide bans:", flush=True)
            results["propagation"] = propagation(
                lab, [int(n) for n in args.nodes.split(",")], args.trials
            )
    finally:
        lab.down()
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
