"""Shared fixtures. Unit tests need nothing; tests under tests/lab/ get the Docker lab."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The simulated PVE answers failed logins after PVE's 3 s; the suite's labs use a short delay so it
# stays quick (tests/lab/test_01_lab.py checks the real one on a node of its own).
os.environ.setdefault("PVELAB_FAIL_DELAY", "0.2")
# `pytest -n N`: each worker runs its own lab, side by side (lab/config.py NAMESPACE). Set, not
# defaulted: the workers inherit the environment of the process that started them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["PVELAB_NS"] = os.environ["PYTEST_XDIST_WORKER"]


# Lab modules, longest first (measured: `make test` prints each module's time at its end). Test
# workers take whole modules in collection order (`--dist loadfile --no-loadscope-reorder`): the
# longest start first and the short ones fill in, so no long module starts last and ends the run
# alone. Modules not named here follow, then the unit tests.
LONGEST_FIRST = [
    "test_13_alerts",  # mostly waits for Prometheus: first, while the others compute
    "test_03_faults",
    "test_10_products",
    "test_02_deploy",
    "test_04_day2",
    "test_09_cluster_bans",
    "test_11_events",
    "test_15_proxy",
    "test_14_upgrade",
    "test_12_trust",
    "test_16_cluster_failures",
    "test_08_ipv6",
    "test_06_teeth",
    "test_07_blind",
    "test_05_package",
    "test_01_lab",
]


def module_rank(item):
    name = item.module.__name__.rpartition(".")[2] if item.module else ""
    if name in LONGEST_FIRST:
        return LONGEST_FIRST.index(name)
    return len(LONGEST_FIRST) + ("tests/unit/" in str(item.fspath).replace(os.sep, "/"))


def pytest_collection_modifyitems(items):
    items.sort(key=module_rank)  # stable: each module's own order is kept
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.lab)
        if "fail2ban_regex" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fail2ban_regex)


def pytest_configure(config):
    """`pytest -n N`, in the process that starts the workers: every worker's lab network is made
    here, one after the other, before any worker starts (workers making them at once raced in
    Docker's address pools: "Pool overlaps")."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    try:
        import docker

        from lab.lab import ensure_network

        client = docker.from_env()
        for number in range(int(workers)):
            ensure_network(client, f"gw{number}")
    except Exception:  # noqa: BLE001 - no engine (unit tests only): the lab tests say so themselves
        pass


def pytest_sessionfinish(session):
    """The run is over, in the process that started the test workers: their labs' networks go
    (each worker keeps its own until then: see lab.lab.ensure_network)."""
    if os.environ.get("PYTEST_XDIST_WORKER_COUNT") and not os.environ.get("PYTEST_XDIST_WORKER"):
        import docker

        from lab.lab import remove_networks

        try:
            remove_networks(docker.from_env(), None)
        except docker.errors.DockerException:
            pass  # no engine: there is nothing of ours to take away


def pytest_terminal_summary(terminalreporter):
    """Each test module's time (setup, call and teardown of its tests), longest first: what
    LONGEST_FIRST is ordered by."""
    spent = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            seconds = getattr(report, "duration", None)  # a test's phase (not a collection)
            if isinstance(seconds, float) and getattr(report, "nodeid", ""):
                module = report.nodeid.split("::")[0]
                spent[module] = spent.get(module, 0.0) + seconds
    if spent:
        terminalreporter.write_sep("=", "time per test module")
        for module, seconds in sorted(spent.items(), key=lambda m: -m[1]):
            terminalreporter.write_line(f"{seconds:8.1f}s {module}")
