"""One node as the deploy sees it: its checked settings, its facts, its plan and its files.
Read once per node by deploy_fail2ban() and passed to each task."""

from dataclasses import dataclass

from pyinfra.api.exceptions import DeployError

from .facts import NodeFacts
from .plan import NodeError, Plan, plan_node
from .render import render_files
from .settings import SettingsError, check_address, validate


@dataclass(kw_only=True)
class Node:
    name: str
    settings: dict  # validated settings (settings.validate)
    facts: dict = None  # NodeFacts; None when they could not be read
    plan: Plan = None  # None when the node cannot be served
    files: dict = None  # {path: bytes} to put on the node
    error: str = None  # why the node cannot be served, else None


def inventory_addresses(inventory):
    """Every node of the inventory as its peers reach it (ssh_hostname, else its name), when that is
    an address or a host name: a connector name like @docker/... or @local is nobody's address."""
    found = {h.data.get("ssh_hostname") or h.name for h in inventory}
    return sorted(a for a in found if check_address(a))


def settings_of(host):
    """The host's validated settings; bad ones stop the whole run before anything changes."""
    try:
        return validate(host.data.dict())
    except SettingsError as error:
        raise DeployError(f"{host.name}: {error}") from None


def read_node(host, inventory):
    """Node for `host`: settings checked (DeployError for the whole run), facts read, plan made.
    A node whose facts cannot be read, or that cannot be served, gets `error` and no plan."""
    settings = settings_of(host)
    facts = host.get_fact(NodeFacts)
    if facts is None:  # pyinfra has failed this node alone and printed why
        return Node(
            name=host.name,
            settings=settings,
            error="its facts could not be read (pyinfra's error above)",
        )
    try:
        plan = plan_node(settings, facts, inventory_addresses(inventory))
    except NodeError as error:
        return Node(name=host.name, settings=settings, facts=facts, error=str(error))
    return Node(
        name=host.name,
        settings=settings,
        facts=facts,
        plan=plan,
        files=render_files(plan, settings),
    )
