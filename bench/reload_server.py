"""An HTTP server for rolling reloads under tend: it serves on the socket tend passes as
fd 3 (systemd socket activation), says READY=1 over sd_notify once it accepts, and on
SIGTERM stops accepting, answers what it has accepted, and exits. That last part is what
a graceful stop means: connections the kernel has queued but nobody accepted stay in the
shared socket for the replacement.

Used by tests/it/reload.rs and bench/reload.py. Answers `INSTANCE PID`. With a file named
`never-ready` in its directory at start, it serves but never says READY=1 (a broken
release, for the test of an aborted reload).
"""

import http.server
import os
import signal
import socket
import sys
import threading


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def setup(self):
        # The listening socket is non-blocking (below); its connections are not.
        self.request.setblocking(True)
        super().setup()

    def do_GET(self):
        body = f"{os.environ.get('TEND_INSTANCE', '0')} {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.sendall(message.encode())


if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit("no socket from tend (LISTEN_PID is not mine)")

server = http.server.ThreadingHTTPServer(("", 0), Hello, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=3)
# Several processes poll the one socket: a blocking accept() would leave the losers stuck
# in accept() until the next connection, deaf to a stop.
server.socket.setblocking(False)
# Answer what was accepted before exiting: wait for the request threads.
server.daemon_threads = False


def stop(signum, frame):
    # shutdown() waits for serve_forever() to return: not from the thread that runs it.
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, stop)
never_ready = os.path.exists("never-ready")
print(f"serving {os.getpid()}", flush=True)
if not never_ready:
    notify("READY=1")
server.serve_forever(poll_interval=0.05)
server.server_close()
print(f"stopped {os.getpid()}", flush=True)
