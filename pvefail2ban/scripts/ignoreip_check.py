"""Run on the node: read `fail2ban-client -d` (the configuration as fail2ban will apply it) on stdin
and fail when an ignoreip entry is neither an address, a CIDR nor a host name. `fail2ban-client -t`
accepts such an entry, but fail2ban-server then dies at start (seen: `@docker/abc`)."""

import ast
import ipaddress
import re
import sys

HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
bad = []
for line in sys.stdin:
    if "'addignoreip'" not in line:
        continue
    command = ast.literal_eval(line.strip())
    for entry in command[3:]:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not HOSTNAME.fullmatch(entry):
                bad.append(
                    f"jail {command[1]}: ignoreip entry {entry!r} is no address, CIDR or host name"
                )
if bad:
    print("fail2ban would fail at start: " + "; ".join(bad))
    sys.exit(1)
