"""An HTTPS webhook sink on the controller (the lab's gateway address): what the nodes' and the
monitoring host's notifications reach, with a certificate every node trusts."""

import queue
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab import config


class Sink(BaseHTTPRequestHandler):
    got = queue.Queue()  # (path, headers, body) of every request

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Sink.got.put((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def drain(wait=0.0):
    """Every request the sink got (waiting `wait` seconds for late ones)."""
    time.sleep(wait)
    found = []
    while True:
        try:
            found.append(Sink.got.get_nowait())
        except queue.Empty:
            return found


def settle(quiet=11, limit=60):
    """Wait until the sink has heard nothing for `quiet` seconds (longer than the daemon's batch
    window: what an earlier test left on its way has arrived), then forget it all."""
    deadline, last = time.monotonic() + limit, time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() < deadline:
        if drain(wait=0.5):
            last = time.monotonic()


def tls_sink(folder, nodes):
    """The sink over HTTPS (a token travels over https only), its certificate made here and
    trusted by every node as an admin's own CA would be (update-ca-certificates)."""
    key, cert = folder / "sink.key", folder / "sink.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=pvelab-sink", "-addext", f"subjectAltName=IP:{config.GATEWAY}"],
        check=True, capture_output=True,
    )  # fmt: skip
    for node in nodes:
        node.sh(
            f"cat > /usr/local/share/ca-certificates/pvelab-sink.crt <<'EOF'\n{cert.read_text()}EOF\n"
            "update-ca-certificates >/dev/null 2>&1",
            check=True,
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # the sink listens on the controller's address on the lab network, once that network exists
    server = ThreadingHTTPServer((config.GATEWAY, 0), Sink)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"https://{config.GATEWAY}:{server.server_address[1]}"
