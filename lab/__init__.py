"""Docker lab of simulated Proxmox VE nodes (see README, "The lab")."""
