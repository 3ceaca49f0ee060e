#!/usr/bin/python3
"""Lab stand-in for Proxmox VE's pvedaemon: the login API on port 8006, and the log lines PVE writes.

Stdlib only. Answers POST /api2/json/access/ticket (form fields username, password) and
POST /api2/json/access/openid/login, and logs through syslog exactly as pve-access-control does:
ident "pvedaemon" with its PID, facility daemon; failures at priority err. The client address is
logged as PVE logs it from its dual-stack socket (IPv4 clients as ::ffff:a.b.c.d). The user name is
logged exactly as sent: the lab must be able to carry hostile input.
"""

import json
import os
import socket
import ssl
import sys
import syslog
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PVE_SIM_PORT", "8006"))
CERT = "/etc/pvelab/pve-ssl.pem"
KEY = "/etc/pvelab/pve-ssl.key"
USERS = {"root@pam": "lab-secret", "admin@pve": "lab-secret"}  # the lab's known users
MAX_USERNAME = 64  # PVE's schema: longer user names are refused before any authentication

_log_lock = threading.Lock()


def log(ident, facility, priority, message):
    with _log_lock:
        syslog.openlog(ident, syslog.LOG_PID, facility)
        syslog.syslog(priority, message)


def client_address(raw):
    return raw if ":" in raw else f"::ffff:{raw}"


class Handler(BaseHTTPRequestHandler):
    server_version = "pve-api-daemon/3.0"
    timeout = 15  # seconds a client may idle, handshake included

    def setup(self):
        super().setup()
        self.request.do_handshake()

    def log_message(
        self, *args
    ):  # no access log: PVE's goes elsewhere, and the journal stays exact
        pass

    def _reply(self, code, data=None):
        body = json.dumps({"data": data}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self):
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                return {k: str(v) for k, v in json.loads(raw).items()}
            except (ValueError, AttributeError):
                return {}
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def do_GET(self):
        if self.path.startswith("/api2/json/version"):
            return self._reply(200, {"version": "lab", "release": "lab"})
        return self._reply(200, {"lab": "pvedaemon simulator"})

    def do_POST(self):
        rhost = client_address(self.client_address[0])
        form = self._form()
        if self.path.rstrip("/") == "/api2/json/access/ticket":
            return self._ticket(rhost, form)
        if self.path.rstrip("/") == "/api2/json/access/openid/login":
            reason = "Failed to verify the authorization code"
            log(
                "pvedaemon",
                syslog.LOG_DAEMON,
                syslog.LOG_ERR,
                f"openid authentication failure; rhost={rhost} msg={reason}",
            )
            return self._reply(401)
        return self._reply(501)

    def _ticket(self, rhost, form):
        username = form.get("username", "")
        password = form.get("password", "")
        if not username or len(username) > MAX_USERNAME:
            return self._reply(
                400, {"errors": {"username": "value may only be 1-64 characters long"}}
            )
        if username not in USERS:
            msg = f"no such user ('{username}')"
        elif password != USERS[username]:
            if username.endswith("@pam"):
                # PAM logs the same attempt too: a filter must count the attempt once.
                log(
                    "IPCC.xs",
                    syslog.LOG_AUTHPRIV,
                    syslog.LOG_NOTICE,
                    "pam_unix(proxmox-ve-auth:auth): authentication failure; logname= uid=0 euid=0 "
                    f"tty= ruser= rhost={rhost}  user={username.split('@')[0]}",
                )
                msg = "Authentication failure"
            else:
                msg = "invalid credentials"
        else:
            log(
                "pvedaemon",
                syslog.LOG_DAEMON,
                syslog.LOG_INFO,
                f"<{username}> successful auth for user '{username}'",
            )
            return self._reply(
                200,
                {
                    "username": username,
                    "ticket": f"PVE:{username}:LAB",
                    "CSRFPreventionToken": "LAB",
                },
            )
        log(
            "pvedaemon",
            syslog.LOG_DAEMON,
            syslog.LOG_ERR,
            f"authentication failure; rhost={rhost} user={username} msg={msg}",
        )
        return self._reply(401)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    tls = None  # set in main()

    def handle_error(self, request, client_address):
        # A client that connects and leaves (port probes, refused TLS) is not an error worth a traceback.
        if not isinstance(
            sys.exc_info()[1], OSError
        ):  # SSL, connection and time-out errors included
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


def main():
    try:
        server = DualStackServer(("::", PORT), Handler)
    except OSError:  # no IPv6 in this container: IPv4 only, addresses still logged as PVE logs them
        server = TLSServer(("0.0.0.0", PORT), Handler)
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(CERT, KEY)
    server.serve_forever()


if __name__ == "__main__":
    main()
