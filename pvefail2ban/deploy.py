"""deploy_fail2ban(): the whole deploy as one pyinfra packaged deploy, like pyinfra-docker's
deploy_docker(). In your own deploy file:

    from pvefail2ban import deploy_fail2ban

    deploy_fail2ban()

Settings come from pvefail2ban/defaults.py, overridden by your group data, host data and --data.
"""

from pyinfra import inventory
from pyinfra.api import deploy

from .defaults import DEFAULTS
from .node import (
    cluster_addresses,
    controller_addresses,
    node_for,
    read_facts,
    settings_of,
    sharing_members,
)
from .tasks.configure import configure
from .tasks.events import events
from .tasks.install import install
from .tasks.preflight import preflight
from .tasks.pveproxy import real_ip
from .tasks.share import share
from .tasks.verify import verify
from .turns import acting_as, first_turn, in_parallel


@deploy("fail2ban for Proxmox", data_defaults=DEFAULTS)
def deploy_fail2ban():
    """preflight -> install -> share -> events -> pveproxy -> configure -> verify on every node of the run. A node that fails
    preflight is left untouched, and a failure on one node never stops the others.

    Done once, on the first turn: every node's settings are checked (a bad one stops the run before
    any node is read), every node of the inventory is read once, in parallel (a node outside
    --limit too: its addresses stay in its peers' ignoreip), then each node's operations are added."""
    if not first_turn():
        return
    run = inventory.get_active_hosts()
    settings = {target.name: settings_of(target) for target in run}
    facts = in_parallel(lambda target: read_facts(target, target in run), list(inventory))
    peers, controller = cluster_addresses(inventory, facts), controller_addresses()
    sharing = sharing_members(inventory, settings, facts)
    keys = {}  # share public keys, {name: key}: filled as each node's key is read or made
    # a node of the run makes its share key in this run: the peers' lines change once it exists
    coming = any(m.key is None and facts.get(m.name) and m.name in settings for m in sharing)
    for target in run:
        with acting_as(target):
            node = node_for(
                target,
                settings[target.name],
                facts[target.name],
                peers,
                controller,
                share=any(m.name == target.name for m in sharing),
            )
            if preflight(node):
                ops = [
                    *install(node),
                    *share(node, sharing, keys, coming),
                    *events(node),
                    *real_ip(node),
                    *configure(node),
                ]
                verify(node, ops)
