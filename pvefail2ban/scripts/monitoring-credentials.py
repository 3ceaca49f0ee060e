"""Run on a monitoring host by python3 (pvefail2ban/day2/monitoring.py), before Alertmanager is
installed: the password its API asks for (alerting.PASSWORD, root's only until Prometheus's group
exists) and its bcrypt hash in Alertmanager's web configuration (alerting.WEB_CONFIG), made once.

    monitoring-credentials.py PASSWORD WEB_CONFIG USER

Prints `made` or `kept` (both were there). The hash comes from the system's libcrypt (libxcrypt:
bcrypt, as Alertmanager's web configuration takes it); Python's own crypt module is gone in 3.13.
Only the standard library. Files are written whole (a new file renamed over the old).
"""

import ctypes
import json
import os
import secrets
import sys

HEADER = (
    "# Managed by pve-fail2ban (pyinfra monitoring.py): Alertmanager's API asks for a password\n"
)


def bcrypt(password):
    """`password`'s bcrypt hash ($2b$, cost 10), from libcrypt."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2b$", 10, None, 0)  # libcrypt draws the salt's random bytes
    hashed = lib.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2b$10$") or len(hashed) != 60:
        raise OSError("this host's libcrypt makes no bcrypt hash")
    return hashed.decode()


def write(path, text, mode):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    new = f"{path}.pve-fail2ban-new"
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), mode)
        out.write(text)
    os.replace(new, path)


def main(password_path, web_path, user):
    if os.path.isfile(password_path) and os.path.isfile(web_path):
        print("kept")
        return 0
    password = secrets.token_hex(32)
    write(password_path, password, 0o600)
    write(web_path, f"{HEADER}basic_auth_users:\n  {user}: {json.dumps(bcrypt(password))}\n", 0o644)
    print("made")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
