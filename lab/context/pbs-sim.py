#!/usr/bin/python3
"""Lab stand-in for the two API daemons of Proxmox Backup Server, or of Proxmox Datacenter Manager
(PBS_SIM_PRODUCT=pdm: built from PBS's crates, the same lines under its own daemons' names),
writing the lines they write. Stdlib only. Sources: proxmox-rest-server (rest.rs: ApiService::call, get_proxied_peer,
proxy_protected_request, the 3 s delay of unauthorized calls; environment.rs: log_failed_auth);
facts in shared/PROXMOX-LOGS.md.

  pbs-sim.py proxy   proxmox-backup-proxy: TLS on [::]:8007 (dual stack). The login call (POST
                     /api2/{json,extjs}/access/ticket, a "protected" method) is forwarded to the api
                     daemon with `Forwarded: for="<peer>";`; any other /api2/ call without a valid
                     ticket or token is refused here and logged here (no user=).
  pbs-sim.py api     proxmox-backup-api: HTTP on 127.0.0.1:82, takes the client's address from the
                     proxy's Forwarded header; logs failed logins with user=.

Each failure: `authentication failure; rhost=<peer> [user=<user id>] msg=<reason>` at priority err
through syslog (ident = the daemon's name with its PID, facility daemon), and the same message in
/var/log/proxmox-backup/api/auth.log after an RFC 3339 date and ": ". <peer> is a Rust SocketAddr:
[::ffff:a.b.c.d]:port or [v6]:port from the dual-stack socket, a.b.c.d:port when listening on IPv4.

PDM: proxmox-datacenter-api is the proxy (TLS on [::]:8443), proxmox-datacenter-privileged-api the
api daemon (HTTP on the UNIX socket /run/proxmox-datacenter-manager/priv.sock), auth log
/var/log/proxmox-datacenter-manager/api/auth.log; PAM's message as proxmox-auth-api 1.x words it.

Environment (the lab writes /etc/pvelab/pbs.env per node):
  PBS_SIM_PRODUCT      "pbs" (default) or "pdm"
  PBS_SIM_LISTEN       "::" (default, dual stack) or "0.0.0.0" (IPv4 only)
  PBS_SIM_DELAY        seconds before a 401 is answered (PBS: 3; the lab's test suite uses less)
  PBS_SIM_FORWARDED    "client": the behaviour before proxmox-rest-server 1.0.5, where the public
                       proxy took the peer from a Forwarded header the client sent; "proxy"
                       (default): only the api daemon reads it, from the proxy
  PBS_SIM_BARE_RHOST   "1": older releases' rhost, the address without brackets and port
"""

import http.client
import json
import os
import re
import socket
import socketserver
import ssl
import sys
import syslog
import threading
import time
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRODUCTS = {  # what differs between the two products built from proxmox-rest-server
    "pbs": {
        "proxy": "proxmox-backup-proxy", "api": "proxmox-backup-api", "port": 8007,
        "api_at": ("127.0.0.1", 82), "auth_log": "/var/log/proxmox-backup/api/auth.log",
        "prefix": "PBS", "realm": "pbs", "pam": "authentication error - Authentication failure (7)",
    },
    "pdm": {
        "proxy": "proxmox-datacenter-api", "api": "proxmox-datacenter-privileged-api",
        "port": 8443, "api_at": "/run/proxmox-datacenter-manager/priv.sock",
        "auth_log": "/var/log/proxmox-datacenter-manager/api/auth.log",
        "prefix": "PDM", "realm": "pdm", "pam": "authentication error - AUTH_ERR (7)",
    },
}  # fmt: skip
PRODUCT = PRODUCTS[os.environ.get("PBS_SIM_PRODUCT", "pbs")]
LISTEN = os.environ.get("PBS_SIM_LISTEN", "::")
DELAY = float(os.environ.get("PBS_SIM_DELAY", "3"))
TRUST_CLIENT_FORWARDED = os.environ.get("PBS_SIM_FORWARDED", "proxy") == "client"
BARE_RHOST = os.environ.get("PBS_SIM_BARE_RHOST") == "1"
PROXY_PORT, API_ADDR = PRODUCT["port"], PRODUCT["api_at"]
CERT, KEY = "/etc/pvelab/pve-ssl.pem", "/etc/pvelab/pve-ssl.key"
AUTH_LOG = PRODUCT["auth_log"]
PASSWORD = "lab-secret"
REALM = PRODUCT["realm"]  # the product's own realm (pbs, pdm) beside pam
USERS = {"root@pam": True, f"admin@{REALM}": True, f"disabled@{REALM}": False}  # id -> enabled
USERID_RE = re.compile(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$")  # pbs-api-types Userid, roughly
MAX_USERID = 64
FORWARDED_FOR = re.compile(r'for="([^"]+)"')  # get_proxied_peer before and after the fix

_lock = threading.Lock()


def socket_addr(host, port):
    """Rust's SocketAddr Display: [v6]:port, v4:port; older releases: the bare address."""
    if BARE_RHOST:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_socket_addr(text):
    """A `for=` value as Rust's SocketAddr::from_str takes it ([v6]:port or v4:port), else None."""
    match = re.fullmatch(
        r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})", text
    )
    if not match:
        return None
    host, port = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
    return socket_addr(host, int(port)) if int(port) <= 65535 else None


def log_failed_auth(ident, peer, user, msg):
    """environment.rs log_failed_auth: the journal (err) and auth.log get the same message."""
    rhost = peer or "unknown"
    line = (
        f"authentication failure; rhost={rhost}" + (f" user={user}" if user else "") + f" msg={msg}"
    )
    log_auth(ident, line, syslog.LOG_ERR)


def log_auth(ident, line, priority=syslog.LOG_DEBUG):
    """One line to the journal (through syslog) and to auth.log (a success: debug, environment.rs
    log_auth)."""
    with _lock:
        syslog.openlog(ident, syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(priority, line)
        os.makedirs(os.path.dirname(AUTH_LOG), exist_ok=True)
        with open(AUTH_LOG, "a") as log:
            log.write(f"{datetime.now().astimezone().isoformat(timespec='seconds')}: {line}\n")


class Handler(BaseHTTPRequestHandler):
    server_version = "proxmox-backup-sim"
    timeout = 15

    def log_message(self, *args):  # no access log: the journal stays exact
        pass

    def _reply(self, code, data=None, message=None):
        raw = json.dumps({"data": data, **({"message": message} if message else {})}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self):
        return self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))

    def _unauthorized(self, started, message="authentication failed"):
        # "always delay unauthorized calls by 3 seconds (from start of request)"
        time.sleep(max(0.0, DELAY - (time.monotonic() - started)))
        self._reply(401, None, message)


class ProxyHandler(Handler):
    server_version = PRODUCT["proxy"]

    def setup(self):
        super().setup()
        self.request.do_handshake()

    def _peer(self):
        if TRUST_CLIENT_FORWARDED:  # before proxmox-rest-server 1.0.5: the client's own header
            match = FORWARDED_FOR.search(self.headers.get("Forwarded") or "")
            claimed = parse_socket_addr(match.group(1)) if match else None
            if claimed:
                return claimed
        host, port = self.client_address[:2]
        if LISTEN != "0.0.0.0" and ":" not in host:
            host = f"::ffff:{host}"
        return socket_addr(host, port)

    def do_GET(self):
        self._api()

    def do_POST(self):
        self._api()

    def _api(self):
        started = time.monotonic()
        path = self.path.split("?")[0]
        peer = self._peer()
        if re.fullmatch(r"/api2/(json|extjs)/access/ticket/?", path) and self.command == "POST":
            return self._forward(peer)
        if path.startswith("/api2/json/version") or not path.startswith("/api2/"):
            return self._reply(200, {"lab": f"{PRODUCT['proxy']} simulator"})
        # every other call needs a ticket or a token; the lab issues none, so any one is bad
        self._body()
        cookie = re.search(
            rf"{PRODUCT['prefix']}AuthCookie=([^;]*)", self.headers.get("Cookie") or ""
        )
        token = (self.headers.get("Authorization") or "").startswith(f"{PRODUCT['prefix']}APIToken")
        if token:
            msg = "user account or token disabled or expired."
        elif cookie:
            msg = "ticket verification failed"
        else:
            msg = "no authentication credentials provided."
        log_failed_auth(PRODUCT["proxy"], peer, None, msg)
        self._unauthorized(started)

    def _forward(self, peer):
        """proxy_protected_request: to the api daemon, with the peer in a Forwarded header."""
        body = self._body()
        headers = {
            "Content-Type": self.headers.get("Content-Type") or "application/x-www-form-urlencoded",
            "Forwarded": f'for="{peer}";',
        }
        if isinstance(API_ADDR, str):  # PDM: the privileged daemon's UNIX socket
            connection = UnixConnection(API_ADDR)
        else:
            connection = http.client.HTTPConnection(*API_ADDR, timeout=30)
        connection.request("POST", self.path, body=body, headers=headers)
        answer = connection.getresponse()
        code, raw = answer.status, answer.read()
        connection.close()
        self.send_response(code)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


class ApiHandler(Handler):
    server_version = PRODUCT["api"]

    def do_POST(self):
        started = time.monotonic()
        match = FORWARDED_FOR.search(self.headers.get("Forwarded") or "")
        peer = parse_socket_addr(match.group(1)) if match else None
        if peer is None and isinstance(API_ADDR, str):  # PDM: the UNIX socket's stand-in address
            peer = "0.0.0.0:807"  # (rest.rs) ... and PBS's TCP daemon: rhost=unknown
        raw = self._body().decode("utf-8", "replace")
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                form = {k: str(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                form = {}
        else:
            form = {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        username, password = form.get("username", ""), form.get("password", "")
        # parameter verification (the Userid schema): 400, nothing logged, no delay
        if not username or len(username) > MAX_USERID or not USERID_RE.match(username):
            return self._reply(400, {"username": "value does not match the regex pattern"})
        if username not in USERS or (password != PASSWORD and username.endswith(f"@{REALM}")):
            msg = "invalid credentials"
        elif password != PASSWORD:
            msg = PRODUCT["pam"]  # PAM
        elif not USERS[username]:
            msg = "user account disabled or expired."
        else:
            log_auth(PRODUCT["api"], f"successful auth for user '{username}'")
            ticket = f"{PRODUCT['prefix']}:{username}:LAB"
            return self._reply(200, {"username": username, "ticket": ticket})
        log_failed_auth(PRODUCT["api"], peer, username, msg)
        self._unauthorized(started, "permission check failed.")


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    tls = None

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # port probes, refused TLS: no traceback
            super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = self.socket.accept()  # the handshake happens in the request's own thread
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class DualStackServer(TLSServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def server_bind(self):
        os.makedirs(os.path.dirname(self.server_address), exist_ok=True)
        if os.path.exists(self.server_address):
            os.unlink(self.server_address)
        super().server_bind()


def main(role):
    os.makedirs(os.path.dirname(AUTH_LOG), exist_ok=True)  # both daemons open it at their start
    open(AUTH_LOG, "a").close()  # (enable_auth_log: FileLogger, append)
    if role == "api" and isinstance(API_ADDR, str):
        server = UnixServer(API_ADDR, ApiHandler)
    elif role == "api":
        server = ThreadingHTTPServer(API_ADDR, ApiHandler)
        server.daemon_threads = True
    else:
        if LISTEN == "0.0.0.0":
            server = TLSServer(("0.0.0.0", PROXY_PORT), ProxyHandler)
        else:
            server = DualStackServer((LISTEN, PROXY_PORT), ProxyHandler)
        server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.tls.load_cert_chain(CERT, KEY)
    server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:] not in (["api"], ["proxy"]):
        sys.exit("usage: pbs-sim.py api|proxy (PBS_SIM_PRODUCT=pbs|pdm)")
    main(sys.argv[1])
