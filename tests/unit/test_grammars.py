"""One grammar per format, in the node library (scripts/nodelib.py), each a formatter and a parser
side by side: fail2ban's own log lines we read, the share protocol's requests and answers, the
received records and the attempt records, the jail name. Each round-trips, and hostile text gets
None or a ValueError naming it, never anything else."""

import ipaddress
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from pvefail2ban.scripts import nodelib

jails = st.from_regex(nodelib.JAIL_NAME, fullmatch=True)
names = st.from_regex(nodelib.NAME, fullmatch=True)
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
canonical = addresses.map(nodelib.canonical_address)  # as our records hold them
times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)).map(
    lambda d: d.strftime(nodelib.WHEN)
)
ages = st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda a: round(a, 3))
hostile = st.one_of(
    st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
)


def test_a_jail_name_has_one_bound_everywhere():
    assert nodelib.JAIL_NAME.fullmatch("a" * 32) and not nodelib.JAIL_NAME.fullmatch("a" * 33)
    for grammar in (nodelib.LOG_LINE, nodelib.BAN_REQUEST, nodelib.ATTEMPT_REQUEST):
        assert nodelib.JAIL in grammar.pattern


@given(
    st.sampled_from(sorted(nodelib.LOG_KINDS)),
    jails,
    addresses,
    times,
    st.sampled_from(["ip", "command", "dns"]),
)
def test_fail2ban_s_log_lines_round_trip(kind, jail, address, when, how):
    end = {"when": when, "by": how, None: None}[nodelib.LOG_KINDS[kind][1]]
    line = nodelib.log_event_line(kind, jail, address, end)
    assert nodelib.log_event(line) == (kind, jail, address, end)
    assert nodelib.log_event("x " + line) is None  # quoted inside another line: not fail2ban's
    assert nodelib.log_event(line + " trailing") is None


def test_the_log_line_grammar_is_fail2ban_s_own_format():
    """fail2ban's format: "%(asctime)s %(name)-24s[%(process)d]: %(levelname)-7s %(message)s"."""
    assert nodelib.log_event(
        "2026-11-29 02:32:20,175 fail2ban.filter         [8763]: INFO    [sshd] Found 192.0.2.1"
        " - 2026-11-29 02:32:20"
    ) == ("Found", "sshd", "192.0.2.1", "2026-11-29 02:32:20")
    assert nodelib.log_event(
        "2026-11-24 22:56:53,553 fail2ban.actions        [311]: NOTICE  [sshd] Restore Ban 192.0.2.1"
    ) == ("Restore Ban", "sshd", "192.0.2.1", None)
    # a kind from the wrong logger, or with the wrong ending, is no line of that kind
    assert (
        nodelib.log_event(
            "2026-11-29 02:32:20,175 fail2ban.filter [8763]: NOTICE  [sshd] Ban 192.0.2.1"
        )
        is None
    )
    assert (
        nodelib.log_event(
            "2026-11-29 02:32:20,175 fail2ban.actions [8763]: NOTICE  [sshd] Ban 192.0.2.1 by ip"
        )
        is None
    )


@given(hostile)
def test_hostile_log_lines_are_none_or_a_well_formed_event(text):
    event = nodelib.log_event(text)
    assert event is None or (
        event[0] in nodelib.LOG_KINDS and nodelib.JAIL_NAME.fullmatch(event[1])
    )
    assert (
        nodelib.found_line(text, {"sshd"}) in (None,)
        or nodelib.found_line(text, {"sshd"})[0] == "sshd"
    )
    change = nodelib.ban_line(text)
    assert change is None or str(ipaddress.ip_address(change[2])) == change[2]


@given(jails, addresses, st.one_of(st.just(-1), st.integers(1, 10**10 - 1)), ages)
def test_ban_requests_round_trip(jail, address, seconds, age):
    line = nodelib.ban_request(jail, address, seconds, age)
    assert line.endswith("\n") and len(line) <= nodelib.MAX_REQUEST
    assert nodelib.parse_request(line[:-1]) == ("ban", jail, address, seconds, age)


@given(jails, addresses, ages)
def test_attempt_requests_round_trip(jail, address, age):
    line = nodelib.attempt_request(jail, address, age)
    assert line.endswith("\n") and len(line) <= nodelib.MAX_REQUEST
    assert nodelib.parse_request(line[:-1]) == ("attempt", jail, address, age)


@given(hostile)
def test_hostile_requests_are_refused_naming_them(text):
    try:
        request = nodelib.parse_request(text)
    except ValueError as error:
        assert str(error).startswith("malformed request ")
        return
    assert request[0] in ("ban", "attempt") and nodelib.JAIL_NAME.fullmatch(request[1])


@given(st.sampled_from(nodelib.ANSWERS), st.text(max_size=200).filter(lambda t: "\n" not in t))
def test_answers_round_trip(word, text):
    line = nodelib.answer(word, text)
    assert nodelib.parse_answer(line.encode()) == (word, text)


@given(st.binary(max_size=300))
def test_a_hostile_answer_is_no_word_of_ours(raw):
    word, rest = nodelib.parse_answer(raw)
    assert word is None or word in nodelib.ANSWERS
    assert isinstance(rest, str)


@given(
    st.integers(0, 2**40),
    jails,
    canonical,
    names,
    st.floats(0, 1e10).map(lambda a: round(a, 3)),
    st.one_of(st.none(), st.integers(-1, 10**9)),
)
def test_received_records_round_trip(end, jail, address, origin, at, here):
    record = nodelib.Received(end, jail, address, origin, at, here)
    assert nodelib.parse_received(nodelib.received_line(record)) == record


@given(st.floats(0, 1e10).map(lambda a: round(a, 3)), jails, canonical, names)
def test_attempt_records_round_trip(at, jail, address, origin):
    line = nodelib.attempt_record(at, jail, address, origin)
    assert nodelib.parse_attempt_record(line) == (at, jail, address, origin)


@given(hostile)
def test_hostile_records_are_skipped(text):
    record = nodelib.parse_received(text)
    assert record is None or nodelib.JAIL_NAME.fullmatch(record.jail)
    attempt = nodelib.parse_attempt_record(text)
    assert attempt is None or nodelib.JAIL_NAME.fullmatch(attempt[1])


def test_a_network_banned_by_hand_and_an_ignoreself_line_are_fail2ban_s_own_lines():
    line = nodelib.log_event_line("Ban", "sshd", "192.0.2.0/24")
    assert nodelib.log_event(line) == ("Ban", "sshd", "192.0.2.0/24", None)
    assert nodelib.ban_line(line) is None  # no single address: shared with no peer
    ignored = nodelib.log_event_line("Ignore", "sshd", "10.0.0.1", "ignoreself rule")
    assert nodelib.log_event(ignored) == ("Ignore", "sshd", "10.0.0.1", "ignoreself rule")
    # fail2ban writes ASCII digits: other digits are no time of its own
    assert nodelib.log_event(line.replace("2026", "٢٠٢٦", 1)) is None
