"""SSH public keys of the right shape for tests (no real key pair behind them)."""

import base64


def ssh_key(seed, kind="ssh-ed25519"):
    """ "<kind> <base64>" whose blob names `kind`, as sshd and our facts expect, from `seed`."""
    name = kind.encode()
    body = str(seed).encode().ljust(32, b".")[:32]
    blob = len(name).to_bytes(4, "big") + name + len(body).to_bytes(4, "big") + body
    return f"{kind} {base64.b64encode(blob).decode()}"
