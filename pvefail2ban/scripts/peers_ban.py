#!/usr/bin/python3 -I
"""The recidive jail's ignorecommand where bans are shared (pve-fail2ban): exit 0 ("ignore") when
the ban that fail2ban's log just said was made here is a peer's, 1 when it is this node's own.

    peers_ban.py ADDRESS

A peer's ban here (made by the receiver for it, or by its failures alone: share.charged_to) is
that peer's word, not this node's finding: five of them must not make a one-week, all-ports ban of
this node's own. The receiver records a ban before it makes it: that record answers. A ban the
peers' failures completed is recorded by the share daemon only after fail2ban's actions ran, and
they wait for this command (fail2ban runs one command at a time): so it is judged here as the
share daemon judges it, to the day (recidive's window): a peer's failure of the address counted
here (ATTEMPTS) and no failure of this node's own in fail2ban's log (`Found`) since.

Only the standard library and nodelib beside it. Reads at most 1 MiB of each file; never waits.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (  # noqa: E402
    ATTEMPTS,
    FAIL2BAN_LOG,
    RECEIVED,
    RECEIVED_WINDOW,
    canonical_address,
    parse_attempt_record,
    parse_received,
    read_tail,
)

LATELY = 86400  # seconds: a peer's failure this recent may have made the ban (recidive's window)


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
    """When the last peer's failure of `address` in ATTEMPTS `lines` was counted here, if lately;
    else None."""
    last = None
    for line in lines:
        record = parse_attempt_record(line)
        if record and record[2] == address and now - record[0] < LATELY:
            last = record[0] if last is None else max(last, record[0])
    return last


def found_here(address, lines):
    """True when fail2ban's log `lines` (those since the peer's failure) hold a failure of
    `address` this node found itself (`Found`: a peer's is logged `Attempt`)."""
    needle = f"] Found {address} - "
    return any(needle in line and " fail2ban.filter " in line for line in lines)


def log_since(lines, when):
    """The lines of fail2ban's log from the second of `when` (local time, as fail2ban writes)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when - 1))
    return [line for line in lines if line[:19] >= stamp]


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
    since = attempted_lately(address, read_tail(ATTEMPTS), now)
    if since is None:
        return 1
    return 1 if found_here(address, log_since(read_tail(FAIL2BAN_LOG), since)) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
