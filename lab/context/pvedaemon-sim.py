#!/usr/bin/python3
"""Lab stand-in for Proxmox VE's login API (pveproxy + pvedaemon) on port 8006, writing the log
lines PVE writes; with PVE_SIM_PRODUCT=pmg, Proxmox Mail Gateway's (pmgproxy + pmgdaemon, pmg-api
src/PMG/API2/AccessControl.pm and OIDC.pm). Stdlib only. Sources: pve-access-control (src/PVE/API2/AccessControl.pm,
AccessControl.pm, Auth/Plugin.pm, API2/TFA.pm on stable-7), pve-http-server (the 3 s delay, the
extjs formatter), pve-common (Ticket.pm, OTP.pm); facts in shared/PROXMOX-LOGS.md.

  POST /api2/{json,extjs}/access/ticket   username, password, optional realm, tfa-challenge
  POST /api2/{json,extjs}/access/vncticket authid, vncticket, path, privs (no login needed)
  POST /api2/json/access/tfa               response (PVE 7 only: the second factor, own endpoint)
  POST /api2/json/access/openid/login      always fails (the lab has no OpenID realm)
  POST /api2/json/access/oidc/login        PMG: always fails ("openid connect authentication failure")
  GET  /api2/json/<path>                   pveproxy's own check of an API token or ticket: 401,
                                           no body, no line but the access log's (the token
                                           root@pam!lab=LAB-TOKEN is valid; PMG has no tokens)
  CONNECT on 3128 (PVE)                    spiceproxy: every ticket is invalid, 401 at once

Every request gets pveproxy's access log line (pmgproxy's on PMG), written when it is answered:
  <address> - <user> [dd/mm/YYYY:HH:MM:SS +zzzz] "<request line>" <status> <length or ->
with the address from the header PROXY_REAL_IP_HEADER names in /etc/default/pveproxy, where the
TCP peer is in PROXY_REAL_IP_ALLOW_FROM (or that is unset) and the header holds one address, as
pve-http-server's AnyEvent.pm does (PVE >= 8.3.4; never pvedaemon's rhost).

Lines go through syslog, ident "pvedaemon" with its PID, facility daemon; failures at priority
err. The client address is logged as PVE logs it: from a dual-stack socket, IPv4 clients as
::ffff:a.b.c.d and IPv6 clients as they are; with PVE_SIM_LISTEN=0.0.0.0 (PVE listening on IPv4
only) as plain a.b.c.d. The user name is logged exactly as sent, so hostile input reaches the logs.

Environment (the lab writes /etc/pvelab/pvedaemon.env per node):
  PVE_SIM_RELEASE  7 (legacy: TFA on its own endpoint, PAM line without rhost) or 8 (default)
  PVE_SIM_LISTEN   "::" (default, dual stack) or "0.0.0.0" (IPv4 only)
  PVE_SIM_DELAY    seconds before a 401 is answered (PVE: 3; the lab's test suite uses less)
  PVE_SIM_PRODUCT  pve (default: ident pvedaemon) or pmg (ident pmgdaemon, PMG's lines)
"""

import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import syslog
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PVE_SIM_PORT", "8006"))
RELEASE = int(os.environ.get("PVE_SIM_RELEASE", "8"))
LISTEN = os.environ.get("PVE_SIM_LISTEN", "::")
DELAY = float(os.environ.get("PVE_SIM_DELAY", "3"))
PMG = os.environ.get("PVE_SIM_PRODUCT", "pve") == "pmg"
DAEMON = "pmgdaemon" if PMG else "pvedaemon"
ACCESS_LOG = "/var/log/pmgproxy/pmgproxy.log" if PMG else "/var/log/pveproxy/access.log"
SPICE_PORT = int(os.environ.get("PVE_SIM_SPICE_PORT", "0" if PMG else "3128"))
TOKEN = "PVEAPIToken=root@pam!lab=LAB-TOKEN"  # the lab's one valid API token
CERT = "/etc/pvelab/pve-ssl.pem"
KEY = "/etc/pvelab/pve-ssl.key"
PASSWORD = "lab-secret"
# The lab's users: name -> (enabled, second factor code or None)
USERS = {
    "root@pam": (True, None),
    "admin@pve": (True, None),
    "disabled@pve": (False, None),
    "tfa@pve": (True, "123456"),
}
MAX_FIELD = 64  # the API schema's maxLength for username and authid: longer is a 400, never logged
USER_RE = re.compile(
    r"^([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+)$"
)  # PVE::Auth::Plugin user/realm_regex

_log_lock = threading.Lock()


def log(ident, facility, priority, message):
    with _log_lock:
        syslog.openlog(ident, syslog.LOG_PID, facility)
        syslog.syslog(priority, message)


def proxy_config(path="/etc/default/pveproxy"):
    """PROXY_REAL_IP_HEADER and PROXY_REAL_IP_ALLOW_FROM as pveproxy reads them (PVE only)."""
    found = {}
    try:
        with open(path) as file:
            for line in file:
                match = re.match(r"\s*(?:export\s+)?(PROXY_REAL_IP_\w+)=(.*)$", line.strip())
                if match:
                    found[match.group(1)] = match.group(2).strip().strip("\"'")
    except OSError:
        pass
    return found


REAL_IP = {} if PMG else proxy_config()


def _ip(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def real_ip(peer, headers):
    """The address pveproxy logs: the real-IP header's single address where the peer may set it
    (AnyEvent.pm check_allowed_proxy: every peer when PROXY_REAL_IP_ALLOW_FROM is unset)."""
    name = REAL_IP.get("PROXY_REAL_IP_HEADER")
    value = headers.get(name) if name else None
    claimed = _ip(", ".join(headers.get_all(name))) if value else None  # a list is no address
    if claimed is None:
        return peer
    allowed = REAL_IP.get("PROXY_REAL_IP_ALLOW_FROM")
    if allowed:
        source = _ip(peer)
        if source.version == 6 and source.ipv4_mapped:
            source = source.ipv4_mapped  # normalize_v4_in_v6
        nets = []
        for item in allowed.split(","):
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                pass
        if allowed.strip() != "all" and not any(source in net for net in nets):
            return peer
    return str(claimed)


_access_lock = threading.Lock()


def access_log(address, requestline, code, length, user="-"):
    stamp = time.strftime("%d/%m/%Y:%H:%M:%S %z")
    line = f'{address} - {user} [{stamp}] "{requestline}" {code} {length if length else "-"}\n'
    with _access_lock:
        os.makedirs(os.path.dirname(ACCESS_LOG), exist_ok=True)
        with open(ACCESS_LOG, "a") as file:
            file.write(line)


def auth_failure(line):
    log(DAEMON, syslog.LOG_DAEMON, syslog.LOG_ERR, line)


class Unauthorized(Exception):
    """A failed login: `str()` is what PVE writes after msg=."""


def client_address(raw):
    if LISTEN == "0.0.0.0" or ":" in raw:
        return raw
    return f"::ffff:{raw}"


def check_user_enabled(username):
    """PVE::AccessControl::check_user_enabled, with Auth::Plugin::verify_username's checks first."""
    if len(username) < 3:
        raise Unauthorized(f"user name '{username}' is too short")
    if len(username) > 64:  # possible once a realm is appended
        raise Unauthorized(f"user name '{username}' is too long ({len(username)} > 64)")
    if not USER_RE.match(username):
        raise Unauthorized(f"value '{username}' does not look like a valid user name")
    if username not in USERS:
        raise Unauthorized(f"no such user ('{username}')")
    if not USERS[username][0]:
        raise Unauthorized(f"user '{username}' is disabled")


class Handler(BaseHTTPRequestHandler):
    server_version = "pve-api-daemon/3.0"
    timeout = 15  # seconds a client may idle, handshake included

    def setup(self):
        super().setup()
        self.request.do_handshake()

    def log_message(self, *args):  # no access log: the journal stays exact
        pass

    def _reply(self, code, data=None, message=None, extjs=False):
        if extjs:  # pve-http-server's extjs formatter: HTTP 200, the status inside
            body = {"data": data, "success": 0 if code >= 400 else 1}
            if code >= 400:
                body.update(message=message, status=code)
            code = 200
        else:
            body = {"data": data, **({"message": message} if message else {})}
        # compact, as Perl's JSON writes it: the extjs failure is 75 bytes, the JSON one 50, as
        # from PVE (a proxy's access log tells a failed web UI login by that size)
        raw = json.dumps(body, separators=(",", ":")).encode()
        self._logged(code, len(raw))
        self.send_response(code)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _logged(self, code, length, user="-"):
        peer = client_address(self.client_address[0])
        access_log(real_ip(peer, self.headers), self.requestline, code, length, user)

    def _empty(self, code, delay_from=None):
        """An answer without a body (pveproxy's own 401), logged at once, sent after the delay."""
        self._logged(code, 0)
        if delay_from is not None:
            time.sleep(max(0.0, DELAY - (time.monotonic() - delay_from)))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _form(self):
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                return {k: str(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                return {}
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def _cookie_user(self):
        match = re.search(
            r"PVEAuthCookie=PVE(?:%3A|:)!tfa!([^:%]+)", self.headers.get("Cookie") or ""
        )
        return urllib.parse.unquote(match.group(1)) if match else None

    def do_GET(self):
        started = time.monotonic()
        if self.path.startswith("/api2/json/version"):
            return self._reply(200, {"version": "lab", "release": str(RELEASE)})
        if not self.path.startswith("/api2/"):
            return self._reply(200, {"lab": "pvedaemon simulator"})
        # pveproxy checks the token or ticket itself (PVE/HTTPServer.pm auth_handler): a failure
        # is a 401 without a body, after the delay; its warning names no address
        token = self.headers.get("Authorization") or ""
        if token and not PMG and token == TOKEN:
            return self._reply(200, {"lab": "authenticated"})
        if token and not PMG:
            log("pveproxy", syslog.LOG_DAEMON, syslog.LOG_WARNING,
                "authentication failure: invalid token value!")  # fmt: skip
        return self._empty(401, started)

    def do_POST(self):
        started = time.monotonic()
        rhost = client_address(self.client_address[0])
        form = self._form()
        match = re.fullmatch(r"/api2/(json|extjs)/access/([a-z/]+?)/?", self.path.split("?")[0])
        if not match:
            return self._reply(501)
        extjs, call = match.group(1) == "extjs", match.group(2)
        try:
            if call == "ticket":
                return self._reply(200, self._ticket(rhost, form), extjs=extjs)
            if call == "vncticket":
                return self._reply(200, self._vncticket(rhost, form), extjs=extjs)
            if call == "tfa" and RELEASE == 7:
                return self._reply(200, self._tfa_pve7(rhost, form), extjs=extjs)
            if call == "oidc/login" and PMG:
                auth_failure(
                    f"openid connect authentication failure; rhost={rhost} msg=Failed to verify "
                    "the authorization code"
                )
                raise Unauthorized("oidc")
            if call == "openid/login" and not PMG:
                auth_failure(
                    f"openid authentication failure; rhost={rhost} msg=Failed to verify the "
                    "authorization code"
                )
                raise Unauthorized("openid")
        except ValueError as error:  # parameter verification: 400, nothing logged, no delay
            return self._reply(
                400, {"errors": json.loads(str(error))}, "Parameter verification failed.\n", extjs
            )
        except Unauthorized:
            # pve-http-server: "always delay unauthorized calls by 3 seconds"
            time.sleep(max(0.0, DELAY - (time.monotonic() - started)))
            return self._reply(401, None, "authentication failure\n", extjs)
        return self._reply(501)

    def _ticket(self, rhost, form):
        username, realm = form.get("username", ""), form.get("realm", "")
        if len(username) > MAX_FIELD:
            raise ValueError(
                json.dumps({"username": f"value may only be {MAX_FIELD} characters long"})
            )
        if not username:
            raise ValueError(json.dumps({"username": "property is missing and it is not optional"}))
        if realm:
            username += f"@{realm}"
        try:
            check_user_enabled(username)
            password = form.get("password", "")
            second = USERS[username][1]
            if "tfa-challenge" in form and RELEASE >= 8:
                if password != f"totp:{second}":
                    raise Unauthorized("failed 2nd factor")
                ticket = {
                    "username": username,
                    "ticket": f"PVE:{username}:LAB",
                    "CSRFPreventionToken": "LAB",
                }
            else:
                self._first_factor(rhost, username, password)
                ticket = {
                    "username": username,
                    "ticket": f"PVE:{username}:LAB",
                    "CSRFPreventionToken": "LAB",
                }
                if second:
                    ticket.update(ticket=f"PVE:!tfa!{username}:LAB", NeedTFA=1)
        except Unauthorized as error:
            auth_failure(f"authentication failure; rhost={rhost} user={username} msg={error}")
            raise
        success = f"successful auth for user '{username}'"  # PMG: no <root@pam> before it
        log(DAEMON, syslog.LOG_DAEMON, syslog.LOG_INFO, success if PMG else f"<root@pam> {success}")
        return ticket

    def _first_factor(self, rhost, username, password):
        if password == PASSWORD:
            return
        if username.endswith("@pam") and not PMG:
            # PAM logs the same attempt too (a filter must count it once). PVE 7 set no PAM_RHOST.
            pam_rhost = "" if RELEASE == 7 else rhost
            log(
                "IPCC.xs",
                syslog.LOG_AUTHPRIV,
                syslog.LOG_NOTICE,
                "pam_unix(proxmox-ve-auth:auth): authentication failure; logname= uid=0 euid=0 "
                f"tty= ruser= rhost={pam_rhost}  user={username.rsplit('@', 1)[0]}",
            )
            raise Unauthorized("Authentication failure")
        raise Unauthorized("invalid credentials")

    def _vncticket(self, rhost, form):
        authid = form.get("authid", "")
        for key in ("authid", "path", "privs"):
            if len(form.get(key, "")) > MAX_FIELD:
                raise ValueError(
                    json.dumps({key: f"value may only be {MAX_FIELD} characters long"})
                )
        # The lab issues no VNC tickets: every one is invalid, as a guessed one is on PVE.
        msg = (
            "invalid ticket path"
            if not form.get("path")
            else "permission denied - invalid PVEVNC ticket"
        )
        auth_failure(f"authentication failure; rhost={rhost} user={authid} msg={msg}")
        raise Unauthorized(msg)

    def _tfa_pve7(self, rhost, form):
        user = self._cookie_user()
        if not user:
            raise Unauthorized("no ticket")  # the permission check, before any line is written
        if form.get("response") != USERS.get(user, (None, None))[1]:
            auth_failure(
                f"authentication verification failure; rhost={rhost} user={user} msg=oath auth failed"
            )
            raise Unauthorized("oath auth failed")
        return {"ticket": f"PVE:{user}:LAB"}


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    tls = None  # set in main()

    def handle_error(self, request, client_address):
        # A client that connects and leaves (port probes, refused TLS) is not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def get_request(self):
        # The TLS handshake happens in the request's thread: a slow client never blocks the others.
        sock, addr = self.socket.accept()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class DualStackServer(TLSServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class SpiceHandler(BaseHTTPRequestHandler):
    """spiceproxy on 3128 (plain HTTP, CONNECT only): a bad ticket is a 401 "invalid ticket"
    (14 bytes) at once, without the delay; its line has the TCP peer (no real-IP support)."""

    timeout = 15

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        raw = b"invalid ticket"
        access_log(client_address(self.client_address[0]), self.requestline, 401, len(raw))
        self.send_response(401)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class PlainDualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main():
    os.makedirs(os.path.dirname(ACCESS_LOG), exist_ok=True)  # the package's folder, its log
    open(ACCESS_LOG, "a").close()
    if SPICE_PORT:
        spice = (
            ThreadingHTTPServer(("0.0.0.0", SPICE_PORT), SpiceHandler)
            if LISTEN == "0.0.0.0"
            else PlainDualStack((LISTEN, SPICE_PORT), SpiceHandler)
        )
        threading.Thread(target=spice.serve_forever, daemon=True).start()
    if LISTEN == "0.0.0.0":
        server = TLSServer(("0.0.0.0", PORT), Handler)
    else:
        server = DualStackServer((LISTEN, PORT), Handler)
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(CERT, KEY)
    log(DAEMON, syslog.LOG_DAEMON, syslog.LOG_INFO, "starting server")  # as PVE::Daemon does
    server.serve_forever()


if __name__ == "__main__":
    main()
