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


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.lab)
        if "fail2ban_regex" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.fail2ban_regex)


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
