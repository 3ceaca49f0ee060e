"""Docker lab of simulated Proxmox VE nodes (see docs/lab-and-tests.md)."""
