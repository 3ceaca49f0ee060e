"""Plain logic of the pve-fail2ban deploy: settings checks, node facts, per-node plan. No pyinfra
state is touched here except in facts.py and operations.py, so everything else is unit-tested."""
