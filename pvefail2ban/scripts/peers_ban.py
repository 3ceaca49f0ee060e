#!/usr/bin/python3 -I
"""The recidive jail's ignorecommand where bans are shared (pve-fail2ban): exit 0 ("ignore") when
the ban that fail2ban's log just said was made here is a peer's, 1 when it is this node's own.

    peers_ban.py ADDRESS

A peer's ban here (made by the receiver for it, or by its failures alone: share.charged_to) is
that peer's word, not this node's finding: five of them must not make a one-week, all-ports ban of
this node's own. The receiver records a ban before it makes it; a ban a peer's failures completed
is recorded by the share daemon a moment after fail2ban logs it, so where a peer's failure of
that address was counted here lately, this waits for that record, WAIT seconds at most.

Only the standard library and nodelib beside it. Reads at most 1 MiB of each record file.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (  # noqa: E402
    ATTEMPTS,
    RECEIVED,
    RECEIVED_WINDOW,
    canonical_address,
    parse_attempt_record,
    parse_received,
    read_tail,
)

WAIT = 3.0  # seconds the share daemon gets to record a ban a peer's failures made
LATELY = 86400  # seconds: a peer's failure this recent may have made the ban (findtime's bound)


def received_here(address, lines, now):
    """True when RECEIVED `lines` hold a ban of `address` made here for a peer that still runs,
    or was made in the last RECEIVED_WINDOW seconds (the ban fail2ban's log just told of)."""
    for line in lines:
        record = parse_received(line)
        if record and record.address == address:
            if record.end == 0 or record.end > now or now - record.at < RECEIVED_WINDOW:
                return True
    return False


def attempted_lately(address, lines, now):
    """True when ATTEMPTS `lines` hold a peer's failure of `address` counted here lately."""
    for line in lines:
        record = parse_attempt_record(line)
        if record and record[2] == address and now - record[0] < LATELY:
            return True
    return False


def main(argv):
    try:
        address = canonical_address(argv[1]) if len(argv) == 2 else None
    except ValueError:
        address = None
    if address is None:
        return 1  # not an address: counted, as without this command
    now = time.time()
    if received_here(address, read_tail(RECEIVED), now):
        return 0
    if not attempted_lately(address, read_tail(ATTEMPTS), now):
        return 1
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if received_here(address, read_tail(RECEIVED), time.time()):
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
