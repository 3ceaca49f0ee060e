"""deploy_fail2ban(): the whole deploy as one pyinfra packaged deploy, like pyinfra-docker's
deploy_docker(). In your own deploy file:

    from pvefail2ban import deploy_fail2ban

    deploy_fail2ban()

Settings come from pvefail2ban/defaults.py, overridden by your group data, host data and --data.
"""

from pyinfra import host, inventory
from pyinfra.api import deploy

from .defaults import DEFAULTS
from .node import read_node
from .tasks.configure import configure
from .tasks.install import install
from .tasks.preflight import preflight
from .tasks.verify import verify


@deploy("fail2ban for Proxmox", data_defaults=DEFAULTS)
def deploy_fail2ban():
    """preflight -> install -> configure -> verify on the current host. A node that fails
    preflight is left untouched, and a failure on one node never stops the others."""
    node = read_node(host, inventory)
    if preflight(node):
        install(node)
        configure(node)
        verify(node)
