"""The scripts that run on the nodes, with their shared module nodelib (standard library only)."""
