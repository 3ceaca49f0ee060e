"""The lab as session-scoped fixtures: started once, reused by every lab test, removed at the end.

Lab tests never skip: without a Docker engine they fail, naming what to do (`make test` ensures one).
"""

import os

import docker
import pytest

from lab import config
from lab.lab import Lab, ensure_network


@pytest.fixture(scope="session")
def lab_control():
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(
            f"lab tests need a Docker engine ({error}); run scripts/ensure-docker.sh or `make test`",
            pytrace=False,
        )
    lab = Lab(client)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    # every worker's network, before any lab comes up: the controller's addresses stay the same
    for number in range(workers):
        ensure_network(client, f"gw{number}")
    yield lab
    lab.down(networks=not workers)  # with workers: the networks go when the whole run is over


def default_lab(lab_control):
    lab_control.up(data=config.PER_NODE_COUNT)
    return lab_control


@pytest.fixture(scope="session")
def lab(lab_control):
    """The default lab: pve1=pve8, pve2=pve9, pve3=legacy, and the attacker."""
    return default_lab(lab_control)


@pytest.fixture(scope="session")
def nodes(lab):
    return lab.nodes()


@pytest.fixture(scope="session")
def attacker(lab):
    return lab.attacker()


@pytest.fixture(scope="module")
def converged_lab(lab_control):
    """A fresh lab (one node of each variant), converged once, for the test module that asks."""
    default_lab(lab_control)
    run = lab_control.pyinfra()
    assert run.returncode == 0, run.report
    return lab_control
