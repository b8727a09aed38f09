"""A local gateway sink: answers every send like a generic aggregator and records what it got.

python bench/sink.py --port 8099 --out var/bench-sink.jsonl

One JSON line per request: the reply's `reference`, its `to`, and `at`, the wall-clock
time (Unix seconds) it arrived, which bench/check.py sets against the inbound's stored time.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--out", default="var/bench-sink.jsonl")
    args = parser.parse_args()
    out = open(args.out, "a", buffering=1)  # noqa: SIM115 (kept open for the server's life)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are written separately: without TCP_NODELAY a keep-alive client
        # waits for a delayed ACK (40 ms) on every request.
        disable_nagle_algorithm = True

        def do_POST(self):
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = json.loads(body or b"{}")
            record = {"reference": payload.get("reference"), "to": payload.get("to"), "at": round(arrived, 6)}
            with lock:
                out.write(json.dumps(record) + "\n")
            answer = json.dumps({"id": f"sink-{payload.get('reference')}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
