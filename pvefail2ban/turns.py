"""Cluster-wide work inside pyinfra's per-host deploy turns.

pyinfra runs a deploy once per host (in parallel, at prepare time). What needs every node at once
(the addresses of all peers, a status table, the bans to share) is done on the first active host's
turn only: it reads every node in parallel, once, and adds each node's operations under that
node's own context. The data flows through plain arguments; nothing is kept between runs."""

from contextlib import contextmanager

import gevent
from pyinfra import host, inventory
from pyinfra.api.exceptions import ConnectError
from pyinfra.context import ctx_host


def first_turn():
    """True on the first active host's turn (the others have nothing to do)."""
    active = inventory.get_active_hosts()
    return bool(active) and host == active[0]


@contextmanager
def acting_as(target):
    """Add operations for `target` from the current turn, under the same deploy name, global
    arguments and deploy data as the current host's, so each operation is one row for all nodes."""
    current = ctx_host.get()  # the host itself, not pyinfra's proxy (which follows ctx_host.use)
    if target == current:
        yield
        return
    with ctx_host.use(target):
        with target.deploy(
            current.current_deploy_name,
            current.current_deploy_kwargs,
            current.current_deploy_data,
            in_deploy=current.in_deploy,
        ):
            yield


def in_parallel(function, nodes):
    """{name of the node: function(node)} for every node, run in parallel (one greenlet each)."""
    jobs = {node.name: gevent.spawn(function, node) for node in nodes}
    gevent.joinall(list(jobs.values()))
    return {name: job.get() for name, job in jobs.items()}


def reach(target):
    """Connect to `target` if it is not connected yet (also a host outside --limit, or one whose
    first connection failed), quietly: None when connected, else pyinfra's reason."""
    if target.connected:
        return None
    try:
        target.connect(show_errors=False, raise_exceptions=True)
    except ConnectError as error:
        return str(error)
    return None
