"""Metrics and notifications: the plain logic on the controller (events.py, the plan) and in the
node daemon (scripts/events.py), without a node. Webhooks go to a real HTTP server on loopback."""

import importlib.util
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st

from pvefail2ban.defaults import DEFAULTS
from pvefail2ban.events import CONFIG, EXPORTER, TEXTFILE_DIR, events_config, events_files
from pvefail2ban.facts import SCRIPTS
from pvefail2ban.plan import plan_node
from pvefail2ban.render import render_files
from pvefail2ban.scripts import nodelib
from pvefail2ban.settings import SettingsError, validate
from tests.unit.nodes import node

sys.path.insert(0, str(SCRIPTS))  # the daemon imports nodelib beside it
spec = importlib.util.spec_from_file_location("node_events", SCRIPTS / "events.py")
daemon = importlib.util.module_from_spec(spec)
spec.loader.exec_module(daemon)

WEBHOOK = {"fail2ban_notify_webhook": "https://ntfy.example/pve-bans"}


def settings(**changes):
    return validate({**DEFAULTS, **changes})


def facts(**changes):
    return node("pve8", fresh=True, **{"sshd_maxauthtries": 3, **changes})


def test_metrics_follow_node_exporter_and_the_setting():
    assert events_config("pve1", settings(), facts()) is None  # auto, no node_exporter
    with_exporter = facts(packages={EXPORTER: "1.5.0-1"})
    assert events_config("pve1", settings(), with_exporter)["metrics"] == TEXTFILE_DIR
    moved = facts(packages={EXPORTER: "1.5.0-1"}, textfile_dir="/srv/textfiles")
    assert events_config("pve1", settings(), moved)["metrics"] == "/srv/textfiles"
    assert events_config("pve1", settings(fail2ban_metrics="off"), with_exporter) is None
    on = plan_node(settings(fail2ban_metrics="on"), facts(), name="pve1")
    assert on.events["metrics"] == TEXTFILE_DIR and EXPORTER in on.packages


def test_notifications_are_configured_and_the_jails_hand_every_ban_over():
    chosen = settings(
        fail2ban_notify_mail="root", fail2ban_notify_webhook_token="s3cret", **WEBHOOK
    )
    plan = plan_node(chosen, facts(sendmail=True), name="pve1")
    assert plan.events == {
        "node": "pve1",
        "metrics": None,
        "notify": {
            "mail": "root",
            "webhook": "https://ntfy.example/pve-bans",
            "format": "ntfy",
            "token": "s3cret",
            "unban": False,
        },
        "canary": None,  # it runs with the metrics
    }
    files = render_files(plan, chosen)
    assert "/etc/fail2ban/action.d/pve-fail2ban-events.conf" in files
    jail = files["/etc/fail2ban/jail.d/02_proxmox.local"].decode()
    assert "pve-fail2ban-events[name=%(__name__)s]" in jail
    assert "s3cret" not in "".join(f.decode() for f in files.values())  # never in fail2ban's files
    placed = events_files(plan.events, SCRIPTS)
    assert placed[CONFIG][1] == "600" and json.loads(placed[CONFIG][0])["notify"]["token"]
    assert plan.warnings == []
    (warning,) = plan_node(chosen, facts(), name="pve1").warnings
    assert "no /usr/sbin/sendmail" in warning


@pytest.mark.parametrize(
    "key,value",
    [
        ("fail2ban_metrics", "yes"),
        ("fail2ban_notify_mail", "root\nBcc: victim@example.com"),
        ("fail2ban_notify_mail", "two words"),
        ("fail2ban_notify_webhook", "ftp://example.com/x"),
        ("fail2ban_notify_webhook", "https://"),
        ("fail2ban_notify_webhook", "https://ntfy.example/a b"),
        ("fail2ban_notify_webhook_format", "slack"),
        ("fail2ban_notify_unban", "no"),
    ],
)
def test_bad_event_settings_are_refused_naming_key_and_value(key, value):
    with pytest.raises(SettingsError) as error:
        settings(**{key: value})
    assert key in str(error.value) and repr(value) in str(error.value)


def test_a_bad_token_or_a_password_in_the_url_is_refused_without_showing_it():
    with pytest.raises(SettingsError) as error:
        settings(
            fail2ban_notify_webhook_token="my secret",
            fail2ban_notify_webhook="https://user:hunter2@ntfy.example/x",
        )
    text = str(error.value)
    assert "fail2ban_notify_webhook_token" in text and "my secret" not in text
    assert "fail2ban_notify_webhook" in text and "hunter2" not in text


def test_the_metrics_have_fail2ban_prometheus_exporters_names_and_ours():
    jails = {
        "sshd": {
            "failed": 1,
            "total_failed": 7,
            "banned": 2,
            "total_banned": 3,
            "bantime": 600,
            "findtime": 600,
            "maxretry": 3,
            "enforced": 1,
        }
    }
    text = daemon.prom_text(True, jails)
    for line in (
        "f2b_up 1",
        "f2b_jail_count 1",
        'f2b_jail_failed_current{jail="sshd"} 1',
        'f2b_jail_failed_total{jail="sshd"} 7',
        'f2b_jail_banned_current{jail="sshd"} 2',
        'f2b_jail_banned_total{jail="sshd"} 3',
        'f2b_config_jail_ban_time{jail="sshd"} 600',
        'f2b_config_jail_find_time{jail="sshd"} 600',
        'f2b_config_jail_max_retries{jail="sshd"} 3',
        'f2b_jail_banned_enforced{jail="sshd"} 1',
        "# TYPE f2b_jail_banned_current gauge",
    ):
        assert line in text.splitlines(), line
    down = daemon.prom_text(False, {})
    assert [line for line in down.splitlines() if not line.startswith("#")] == ["f2b_up 0"]
    assert 'jail="a\\"b"' in daemon.prom_text(True, {'a"b': {"banned": 0}})


def test_events_are_read_and_a_flood_is_folded_into_one_message_that_counts_it():
    assert daemon.parse_event("ban sshd 192.0.2.7 3 600") == {
        "kind": "ban",
        "jail": "sshd",
        "ip": "192.0.2.7",
        "failures": "3",
        "bantime": "600",
    }
    assert daemon.parse_event("start sshd") is None and daemon.parse_event("ban x") is None
    flood = [daemon.parse_event(f"ban sshd 192.0.2.{n} 3 600") for n in range(100)]
    listed, folded, folded_bans = daemon.fold(flood)
    assert (len(listed), folded, folded_bans) == (daemon.LISTED, 80, 80)
    title, text, data = daemon.message("pve1", listed, folded, folded_bans)
    assert title == "fail2ban on pve1: 100 bans, 0 unbans" and data["count"] == 100
    assert "and 80 more (80 bans)" in text and text.count("pve1: banned") == daemon.LISTED
    one = daemon.message("pve1", [flood[0]])[0]
    assert one == "fail2ban on pve1: banned 192.0.2.0 in jail sshd after 3 failures, for 600 s"


def test_a_ban_received_from_a_peer_is_told_by_that_peer_not_again(tmp_path):
    records = tmp_path / "received"
    now = time.time()
    records.write_text(f"{int(now) + 600} sshd 192.0.2.7 pve1 {now - 1:.3f}\n")
    event = daemon.parse_event("ban sshd 192.0.2.7 0 600")
    assert daemon.received_from_a_peer(event, now, str(records))
    assert not daemon.received_from_a_peer(event, now + 60, str(records))  # later: its own ban
    other = daemon.parse_event("ban proxmox 192.0.2.7 3 600")
    assert not daemon.received_from_a_peer(other, now, str(records))
    assert not daemon.received_from_a_peer(event, now, str(tmp_path / "none"))


class Sink(BaseHTTPRequestHandler):
    got = None  # a Queue of (path, headers, body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Sink.got.put((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def sink():
    Sink.got = queue.Queue()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Sink.got
    server.shutdown()


@pytest.mark.parametrize("fmt", ["ntfy", "gotify", "json"])
def test_each_webhook_format_is_posted_with_the_token_in_a_header(sink, fmt):
    url, got = sink
    event = daemon.parse_event("ban proxmox 2001:db8::7 3 600")
    config = {"webhook": url, "format": fmt, "token": "s3cret", "mail": ""}
    daemon.send(config, "pve2", [event])
    path, headers, body = got.get(timeout=5)
    assert "s3cret" not in path
    if fmt == "ntfy":
        assert path == "/hook" and headers["Authorization"] == "Bearer s3cret"
        assert headers["Title"].startswith("fail2ban on pve2: banned 2001:db8::7 in jail proxmox")
        assert (
            body.decode()
            == "pve2: banned 2001:db8::7 in jail proxmox after 3 failures, for 600 s\n"
        )
    elif fmt == "gotify":
        assert path == "/hook/message" and headers["X-Gotify-Key"] == "s3cret"
        assert json.loads(body)["title"].startswith("fail2ban on pve2: banned 2001:db8::7")
    else:
        data = json.loads(body)
        assert headers["Authorization"] == "Bearer s3cret"
        assert data["node"] == "pve2" and data["events"] == [event] and data["count"] == 1


def test_a_flood_gives_a_bounded_number_of_messages(sink, monkeypatch):
    url, got = sink
    monkeypatch.setattr(daemon, "BATCH_SECONDS", 1)
    events = queue.Queue()
    config = {"webhook": url, "format": "json", "token": "", "mail": ""}
    threading.Thread(target=daemon.notifier, args=(config, "pve1", events), daemon=True).start()
    for n in range(100):  # 100 bans within half a second
        events.put(daemon.parse_event(f"ban sshd 198.51.100.{n} 3 600"))
        time.sleep(0.005)
    messages = []
    deadline = time.monotonic() + 6
    while sum(m["count"] for m in messages) < 100 and time.monotonic() < deadline:
        try:
            messages.append(json.loads(got.get(timeout=0.5)[2]))
        except queue.Empty:
            pass
    assert sum(m["count"] for m in messages) == 100 and len(messages) <= 3
    assert messages[0]["count"] == 1  # the first ban is told at once


def test_an_unexpected_error_while_sending_never_stops_the_notifications(monkeypatch):
    logged, sent = [], []

    def send(config, node, events, folded=0, folded_bans=0):
        sent.append(events)
        if len(sent) == 1:
            raise RuntimeError("something no one expected")

    monkeypatch.setattr(daemon, "log", logged.append)
    monkeypatch.setattr(daemon, "send", send)
    monkeypatch.setattr(daemon, "BATCH_SECONDS", 0.1)
    events = queue.Queue()
    threading.Thread(target=daemon.notifier, args=({}, "pve1", events), daemon=True).start()
    events.put(daemon.parse_event("ban sshd 192.0.2.1 3 600"))
    time.sleep(0.3)
    events.put(daemon.parse_event("ban sshd 192.0.2.2 3 600"))
    deadline = time.monotonic() + 3
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sent) == 2 and "something no one expected" in logged[0]


def test_a_dead_webhook_costs_a_log_line_within_the_timeout(monkeypatch):
    logged = []
    monkeypatch.setattr(daemon, "log", logged.append)
    monkeypatch.setattr(daemon, "TIMEOUT", 2)
    config = {"webhook": "http://127.0.0.1:9/hook", "format": "ntfy", "token": "", "mail": ""}
    start = time.monotonic()
    daemon.send(config, "pve1", [daemon.parse_event("ban sshd 192.0.2.1 3 600")])
    assert time.monotonic() - start < 3
    assert len(logged) == 1 and "not delivered to the webhook" in logged[0]


def test_the_metrics_never_follow_a_symlink_planted_in_the_textfile_directory(tmp_path):
    """node_exporter's directory may belong to its user: a link planted under our name (or under
    the temporary name an older release used) is replaced or ignored, its target never touched."""
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    directory = tmp_path / "textfile"
    directory.mkdir()
    (directory / "pve-fail2ban.prom").symlink_to(secret)
    (directory / ".pve-fail2ban.prom.1234").symlink_to(secret)
    assert daemon.write_atomically(str(directory), "pve-fail2ban.prom", "f2b_up 1\n")
    assert secret.read_text() == "root only\n" and oct(secret.stat().st_mode & 0o777) == "0o600"
    written = directory / "pve-fail2ban.prom"
    assert not written.is_symlink() and written.read_text() == "f2b_up 1\n"
    assert oct(written.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in directory.iterdir()) == [
        ".pve-fail2ban.prom.1234",
        "pve-fail2ban.prom",
    ]


def test_a_textfile_directory_that_is_a_symlink_is_refused(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(daemon, "log", logged.append)
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (tmp_path / "textfile").symlink_to(elsewhere)
    assert not daemon.write_atomically(str(tmp_path / "textfile"), "pve-fail2ban.prom", "x\n")
    assert list(elsewhere.iterdir()) == [] and "without following a symlink" in logged[0]


class Redirect(BaseHTTPRequestHandler):
    target = None

    def do_POST(self):
        self.send_response(307)
        self.send_header("Location", Redirect.target)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_token_never_follows_a_redirect(sink, monkeypatch):
    """urllib keeps every header across a redirect to another host: the daemon follows none."""
    url, got = sink
    Redirect.target = url
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logged = []
    monkeypatch.setattr(daemon, "log", logged.append)
    config = {"webhook": f"http://127.0.0.1:{server.server_address[1]}/", "format": "json"}
    daemon.send(
        {**config, "token": "s3cret", "mail": ""},
        "pve1",
        [daemon.parse_event("ban sshd 192.0.2.7 3 600")],
    )
    server.shutdown()
    with pytest.raises(queue.Empty):
        got.get(timeout=1)
    assert "not followed" in logged[0]


def test_a_token_over_plain_http_goes_only_to_loopback(monkeypatch):
    logged = []
    monkeypatch.setattr(daemon, "log", logged.append)
    config = {"webhook": "http://192.0.2.50/hook", "format": "json", "token": "s3cret", "mail": ""}
    daemon.send(config, "pve1", [daemon.parse_event("ban sshd 192.0.2.7 3 600")])
    assert "clear text" in logged[0]
    assert daemon.token_exposed("https://192.0.2.50/hook", "s3cret") is None
    assert daemon.token_exposed("http://192.0.2.50/hook", "") is None
    with pytest.raises(SettingsError, match="clear text"):
        settings(fail2ban_notify_webhook="http://ntfy.example/x", fail2ban_notify_webhook_token="t")
    settings(fail2ban_notify_webhook="http://127.0.0.1:8080/x", fail2ban_notify_webhook_token="t")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.attacker.example/hook",  # a host name that starts like loopback
        "HTTP://ntfy.example/x",  # the scheme in capitals
        "Http://192.0.2.50/x",
        "http://127.0.0.1.nip.example/x",
        "http://[::ffff:c000:232]/x",  # 192.0.2.50, IPv4-mapped
        "http://localhost.attacker.example/x",
    ],
)
def test_the_token_check_judges_the_parsed_host_and_any_case_of_scheme(url):
    """One check (nodelib.token_exposed) for the settings of the nodes and of Alertmanager
    (monitoring.py reads the same validated settings) and for the events daemon."""
    assert "clear text" in daemon.token_exposed(url, "t")
    with pytest.raises(SettingsError, match="clear text") as error:
        settings(fail2ban_notify_webhook=url, fail2ban_notify_webhook_token="t")
    assert "/x" not in str(error.value) and "/hook" not in str(error.value)  # the URL: a secret


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "HTTP://127.0.0.2/x",
        "http://[::1]:80/x",
        "http://localhost/x",
        "http://[::ffff:7f00:1]/x",
    ],
)
def test_plain_http_to_loopback_may_carry_the_token(url):
    assert daemon.token_exposed(url, "t") is None
    settings(fail2ban_notify_webhook=url, fail2ban_notify_webhook_token="t")


def test_the_canary_goes_where_each_jails_daemon_writes_and_is_ignored_everywhere():
    on = plan_node(settings(fail2ban_metrics="on"), facts(), name="pve1")
    canary = on.events["canary"]
    # a loopback address: every jail ignores it already, no client elsewhere can have it
    assert canary["address"] == "127.0.0.254" and "127.0.0.1/8" in on.ignoreip
    assert "127.0.0.254" not in on.ignoreip
    assert canary["jails"]["sshd"] == {
        "ident": "sshd", "facility": "authpriv", "priority": "info", "file": None,
        "line": "Invalid user pve-fail2ban-canary from 127.0.0.254 port 9",
    }  # fmt: skip
    assert canary["jails"]["proxmox"]["ident"] == "pvedaemon"
    assert canary["jails"]["proxmox"]["priority"] == "err"  # the level the jail reads
    pbs = plan_node(
        settings(fail2ban_metrics="on", fail2ban_backend="file", fail2ban_sshd_enabled=False),
        node("pbs", sshd_maxauthtries=3),
        name="pve4",
    )
    assert pbs.events["canary"]["jails"]["pbs"]["file"] == "/var/log/proxmox-backup/api/auth.log"
    assert "rhost=[::ffff:127.0.0.254]:9 " in pbs.events["canary"]["jails"]["pbs"]["line"]
    off = plan_node(settings(fail2ban_notify_mail="root"), facts(sendmail=True), name="pve1")
    assert off.events["canary"] is None and off.ignoreip == on.ignoreip


def test_each_canary_line_is_one_its_jails_filter_finds(fail2ban_regex, tmp_path):
    """The canary's line, as its daemon's journal shows it, is found by the jail's filter: the
    failure it stands for would be counted (were the address not ignored)."""
    from pvefail2ban.events import canary_of
    from pvefail2ban.plan import Jail
    from pvefail2ban.products import PRODUCTS
    from tests.unit.test_filter import FILTERS

    products = {p.jail: p for p in PRODUCTS}

    jails = [
        Jail(
            name=p.jail, path="", ports=[], maxretry=1, bantime="1", findtime="1", backend="systemd"
        )
        for p in PRODUCTS
    ]
    for jail, how in canary_of(jails).items():
        sample = tmp_path / jail
        sample.write_text(f"Nov 24 21:52:11 node1 {how['ident']}[4242]: {how['line']}\n")
        out = fail2ban_regex(sample, FILTERS / f"{products[jail].filter}.conf")
        assert "Lines: 1 lines, 0 ignored, 1 matched" in out, (jail, out)


def test_the_canary_is_appended_to_a_regular_file_only(tmp_path):
    log = tmp_path / "auth.log"
    log.write_text("before\n")
    daemon.append_log(str(log), "canary\n")
    assert log.read_text() == "before\ncanary\n"
    target = tmp_path / "shadow"
    target.write_text("root:x\n")
    (tmp_path / "link.log").symlink_to(target)  # planted by the product's own user
    with pytest.raises(OSError):
        daemon.append_log(str(tmp_path / "link.log"), "canary\n")
    assert target.read_text() == "root:x\n"
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError):  # no reader: refused at once, never waited for
        daemon.append_log(str(fifo), "canary\n")
    assert time.monotonic() - started < 1


def test_only_fail2bans_own_ignore_line_counts_as_the_canary_seen():
    line = "2026-11-29 02:32:20,175 fail2ban.filter         [8763]: INFO    [sshd] Ignore 127.0.0.254 by ip"
    assert daemon.log_event(line) == ("Ignore", "sshd", "127.0.0.254", "ip")
    quoted = (
        "2026-11-29 02:32:20,175 fail2ban.filter         [8763]: INFO    [sshd] Found 192.0.2.9 - "
        "user [sshd] Ignore 127.0.0.254 by ip"
    )
    assert daemon.log_event(quoted) is None


def test_the_canary_in_pveproxy_s_log_is_one_its_jails_filter_finds(fail2ban_regex, tmp_path):
    """The access-log jail's canary, and the proxmox jail's behind fail2ban_trusted_proxies, are
    written to pveproxy's log in its format, each found by its jail's filter (mode) alone."""
    from tests.unit.test_filter import FILTERS

    on = plan_node(
        settings(fail2ban_metrics="on", fail2ban_trusted_proxies=["192.0.2.80"]), facts(), name="p"
    )
    canary = on.events["canary"]
    stamp = time.strftime("%d/%m/%Y:%H:%M:%S %z")
    for jail, mode, other in (("pveproxy", "tokens", "logins"), ("proxmox", "logins", "tokens")):
        how = canary["jails"][jail]
        assert how["file"] == "/var/log/pveproxy/access.log" and how["ident"] is None
        sample = tmp_path / jail
        sample.write_text(f"{canary['address']} - - [{stamp}] {how['line']}\n")
        for name, found in ((mode, 1), (other, 0)):
            out = fail2ban_regex(sample, f"{FILTERS / 'proxmox-access.conf'}[mode={name}]")
            assert f"Lines: 1 lines, 0 ignored, {found} matched" in out, (jail, name, out)


def test_failures_the_peers_sent_are_counted_per_jail_from_fail2ban_s_attempt_lines(tmp_path):
    log = tmp_path / "fail2ban.log"
    log.write_text("")
    canary = daemon.Canary({"address": "127.0.0.254", "jails": {}}, 0.0)
    canary.log = daemon.Tail(str(log))

    def line(jail, address):
        return nodelib.log_event_line("Attempt", jail, address, "2026-11-29 02:32:20") + "\n"

    log.write_text(
        line("sshd", "192.0.2.7") * 2
        + line("proxmox", "192.0.2.7")
        + "x " + line("sshd", "192.0.2.8")  # quoted inside another line: no attempt
    )  # fmt: skip
    canary.read(1.0)
    assert canary.shared == {"sshd": 2, "proxmox": 1}
    text = daemon.prom_text(True, {}, ["sshd", "proxmox", "pveproxy"], shared=canary.shared)
    assert 'f2b_jail_failed_shared_total{jail="sshd"} 2' in text
    assert 'f2b_jail_failed_shared_total{jail="pveproxy"} 0' in text
    assert "# TYPE f2b_jail_failed_shared_total counter" in text


URLS = st.text(max_size=120) | st.builds(
    "{}://{}{}".format,
    st.sampled_from(["http", "HTTP", "https", "HTTPS", "ftp", ""]),
    st.sampled_from(["127.0.0.1", "[::1]", "localhost", "127.x.example", "[::ffff:7f00:1]"])
    | st.text(max_size=20),
    st.text(max_size=10),
)


@given(URLS, st.text(max_size=20))
@settings_of_hypothesis(max_examples=300, deadline=None)
def test_the_token_check_never_fails_and_lets_only_https_or_loopback_through(url, token):
    import ipaddress
    import urllib.parse

    verdict = daemon.token_exposed(url, token)
    if verdict is None and token:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https":
            ip = ipaddress.ip_address(parts.hostname) if parts.hostname != "localhost" else None
            assert parts.scheme == "http"
            assert ip is None or (getattr(ip, "ipv4_mapped", None) or ip).is_loopback
    else:
        assert verdict is None or "clear text" in verdict or "is not a URL" in verdict
