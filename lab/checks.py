"""What tests, the demo and benchmarks read off a node: its bans, and a bounded wait for a condition."""
import time


def banned(node, jail):
    """Addresses fail2ban lists as banned in `jail` on `node`."""
    _, out = node.sh(f"fail2ban-client status {jail}")
    line = next((l for l in out.splitlines() if "Banned IP list" in l), "")
    return line.split(":", 1)[1].split() if ":" in line else []


def wait_for(predicate, timeout=10, step=0.2):
    """Poll `predicate` until it returns something true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
