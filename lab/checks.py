"""What tests, the demo and benchmarks read off a node: its bans, and a bounded wait for a condition."""

import re
import time


def banned(node, jail):
    """Addresses fail2ban lists as banned in `jail` on `node` (`fail2ban-client status JAIL`)."""
    text = node.sh(f"fail2ban-client status {jail}")[1]
    found = re.search(r"Banned IP list:\s*(.*)$", text, re.M)
    return found.group(1).split() if found else []


# The least a test waits for anything asynchronous. A wait is a bound on "eventually", never a
# figure: three labs side by side on two cores can take several times the quiet machine's time,
# and a wait that comes true returns at once. How fast things are is measured by `make bench`.
MIN_WAIT = 60


# Each poll is a `docker exec` (runc) and mostly a Python program in the container: a tenth of a
# second of CPU or more. The pause between polls starts short and grows to MAX_STEP, so that a
# quick condition is seen at once and a long wait costs a few polls, not hundreds, on the two
# cores that three labs share.
MAX_STEP = 2.0


def wait_for(predicate, timeout=MIN_WAIT, step=0.2):
    """Poll `predicate` until it returns something true or `timeout` seconds (at least MIN_WAIT)
    pass; return its last value. Polls `step` seconds apart at first, then ever further apart
    (up to MAX_STEP, or `step` where that is longer)."""
    deadline = time.monotonic() + max(timeout, MIN_WAIT)
    pause, longest = step, max(step, MAX_STEP)
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(pause)
        pause = min(longest, pause * 1.5)


def verified_nodes(text, nodes):
    """Names of `nodes` whose deploy run printed the verified summary line (`[pveN] fail2ban x.y; ...`)."""
    return [n.name for n in nodes if re.search(rf"\[{n.name}\]\s+fail2ban [\d.]+; ", text)]


def ops_with_changes(output):
    """Operation names whose Success column is not '-' in pyinfra's results table (checks excluded)."""
    table = output.split("--> Results:")[-1]
    changed = []
    for line in table.splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) >= 5 and cols[0] not in ("Operation", "Grand total") and cols[2] != "-":
            changed.append(cols[0])
    return [name for name in changed if "| Check:" not in name]
