"""A real SMTP server for weauth's tests and local development (aiosmtpd from PyPI), keeping
every message it accepts in memory and serving them as JSON over HTTP.

    python3 scripts/smtp-sink.py [--smtp-port N] [--http-port N]

Prints one line, `smtp=<port> http=<port>`, once both listen (port 0, the default, picks free
ports), and exits when its standard input closes (the test process that started it ended).

HTTP API:
    GET    /messages?to=<address>   the messages with that recipient, oldest first
    GET    /messages                every message
    DELETE /messages                forget every message

A message is {"from", "to": [...], "subject", "html", "text", "headers": {name: value}}
(bodies decoded from their transfer encoding). Recipients whose local part contains
`+reject` are refused with 550 and `+tempfail` with 451, so tests can see a failed send.
"""

import argparse
import asyncio
import email
import email.policy
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from aiosmtpd.smtp import SMTP

MESSAGES = []
LOCK = threading.Lock()


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if "+reject" in local:
            return "550 5.1.1 Mailbox unavailable"
        if "+tempfail" in local:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        html = text = ""
        for part in msg.walk():
            if part.is_multipart():
                continue
            kind = part.get_content_type()
            body = part.get_content()
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            if kind == "text/html":
                html += body
            elif kind == "text/plain":
                text += body
        record = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "html": html,
            "text": text,
            "headers": {k: str(v) for k, v in msg.items()},
        }
        with LOCK:
            MESSAGES.append(record)
        return "250 Message accepted for delivery"


class Api(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/messages":
            return self._send(404, {"error": "not found"})
        to = parse_qs(url.query).get("to", [None])[0]
        with LOCK:
            found = [m for m in MESSAGES if to is None or to.lower() in [r.lower() for r in m["to"]]]
        self._send(200, found)

    def do_DELETE(self):
        with LOCK:
            MESSAGES.clear()
        self._send(200, {})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtp-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()

    http = ThreadingHTTPServer((args.host, args.http_port), Api)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.smtp_port))
    sock.listen(128)

    loop = asyncio.new_event_loop()
    handler = Handler()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, hostname="weauth-smtp-sink"), sock=sock)
    )
    print(f"smtp={sock.getsockname()[1]} http={http.server_address[1]}", flush=True)

    def wait_for_stdin_close():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            loop.call_soon_threadsafe(loop.stop)

    if not sys.stdin.isatty():
        threading.Thread(target=wait_for_stdin_close, daemon=True).start()
    try:
        loop.run_forever()
    finally:
        server.close()
        http.shutdown()


if __name__ == "__main__":
    main()
