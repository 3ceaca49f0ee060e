"""The deploy's steps, one concern per file, each a function of the node it works on:
preflight -> install -> share -> events -> configure -> verify (the flow is pvefail2ban.deploy.deploy_fail2ban)."""
