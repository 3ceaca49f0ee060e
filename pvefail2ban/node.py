"""Per-node state of one pyinfra run, computed once per host and shared by the task files."""
from typing import NamedTuple

from pyinfra.api.exceptions import DeployError

from .facts import NodeFacts
from .plan import NodeError, plan_node
from .render import render_files
from .settings import SettingsError, check_address, validate

_cache = {}


class NodeState(NamedTuple):
    settings: dict  # validated settings
    facts: dict  # NodeFacts
    plan: object  # pvefail2ban.plan.Plan, None when the node cannot be served
    files: dict  # {path: bytes} to put on the node
    error: str  # why the node cannot be served, else None


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


def node_state(host, inventory):
    """NodeState for `host`, computed once per run."""
    if host.name not in _cache:
        settings = settings_of(host)
        facts = host.get_fact(NodeFacts)
        try:
            plan = plan_node(settings, facts, inventory_addresses(inventory))
            files, error = render_files(plan, settings), None
        except NodeError as err:
            plan, files, error = None, None, str(err)
        _cache[host.name] = NodeState(settings, facts, plan, files, error)
    return _cache[host.name]
