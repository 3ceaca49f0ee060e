#!/usr/bin/python3 -I
"""The recidive jail's ignorecommand where bans are shared (pve-fail2ban): exit 0 ("ignore") when
the ban that fail2ban's log just said was made here is a peer's, 1 when it is this node's own.

    peers_ban.py ADDRESS

A peer's ban here (made by the receiver for it, or by its failures alone: share.charged_to) is
that peer's word, not this node's finding: five of them must not make a one-week, all-ports ban of
this node's own. The ban is the last `Ban` of the address in fail2ban's log (its jail). The
receiver records a ban before it makes it: its record in that jail answers. A ban the peers'
failures completed is recorded by the share daemon only after fail2ban's actions ran, and they
wait for this command (fail2ban runs one command at a time): so it is judged here, never more
leniently than the share daemon judges it: a peer's failure of the address counted here in that
jail (ATTEMPTS, and the part rotated away) within LATELY, and no failure of this node's own of
that address (fail2ban's `Found` line, any jail) within LATELY: one own failure that day, and it
counts.

Only the standard library and nodelib beside it. Reads a bounded tail of each file, and parses only
the lines that name the address; never waits.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import (  # noqa: E402
    ATTEMPTS,
    FAIL2BAN_LOG,
    MAX_ATTEMPTS_FILE,
    RECEIVED,
    RECEIVED_WINDOW,
    WHEN,
    ban_line,
    canonical_address,
    log_event,
    parse_attempt_record,
    parse_received,
    read_tail,
)

LATELY = 86400  # seconds: a failure this recent counts (recidive's window, the longest findtime)
LOG_TAIL = 4 << 20  # bytes of fail2ban's log read
RECORDS = 16 << 20  # bytes of RECEIVED read (the receivers stop at 8 MiB)


def banned_in(address, log):
    """The jail of the last `Ban` of `address` in fail2ban's log `log` (recidive's own aside)."""
    for line in reversed(log):
        change = ban_line(line)
        if change and change[0] == "Ban" and change[2] == address and change[1] != "recidive":
            return change[1]
    return None


def received_here(jail, address, lines, now):
    """True when RECEIVED `lines` hold a ban of `address` in `jail` made here for a peer that still
    runs, or was made in the last RECEIVED_WINDOW seconds (the ban fail2ban's log just told of)."""
    for line in lines:
        record = parse_received(line)
        if record and (record.jail, record.address) == (jail, address):
            if record.end == 0 or record.end > now or now - record.at < RECEIVED_WINDOW:
                return True
    return False


def attempted_lately(jail, address, lines, now):
    """True when ATTEMPTS `lines` hold a peer's failure of `address` in `jail` counted lately."""
    for line in lines:
        record = parse_attempt_record(line)
        if record and record[1:3] == (jail, address) and now - record[0] < LATELY:
            return True
    return False


def found_lately(address, log, now):
    """True when fail2ban's log `log` holds a failure of `address` this node found itself (its
    whole `Found` line, any jail: a peer's is logged `Attempt`) within LATELY."""
    for line in log:
        event = log_event(line)
        if event and event[0] == "Found" and event[2] == address:
            try:
                when = time.mktime(time.strptime(event[3], WHEN))
            except (ValueError, OverflowError):
                continue
            if now - when < LATELY:
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
    log = read_tail(FAIL2BAN_LOG, LOG_TAIL, address)
    jail = banned_in(address, log)
    if jail is None:
        return 1
    if received_here(jail, address, read_tail(RECEIVED, RECORDS, address), now):
        return 0
    attempts = [
        *read_tail(ATTEMPTS + ".old", MAX_ATTEMPTS_FILE, address),
        *read_tail(ATTEMPTS, MAX_ATTEMPTS_FILE, address),
    ]
    if attempted_lately(jail, address, attempts, now) and not found_lately(address, log, now):
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
