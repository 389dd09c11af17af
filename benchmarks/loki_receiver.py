"""A minimal Loki push receiver for benchmarks, run as its own process so it never competes for our GIL.

It gunzips and parses every push (so it does the work a real receiver must do), counts the entries, and
answers 204. ``GET /stats`` returns ``{"records": n, "pushes": m, "bytes": compressed bytes}``.
``--stall`` holds every push unanswered (a Loki that accepts connections but never replies).

Run: ``python benchmarks/loki_receiver.py --port 0`` prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

_lock = threading.Lock()
_stats = {"records": 0, "pushes": 0, "bytes": 0}
_stall = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with _lock:
            body = orjson.dumps(_stats)
        self._reply(200, body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if _stall.is_set():
            threading.Event().wait()  # never answer
        data = zlib.decompress(raw, 47) if self.headers.get("Content-Encoding") == "gzip" else raw
        n = sum(len(s["values"]) for s in orjson.loads(data)["streams"])
        with _lock:
            _stats["records"] += n
            _stats["pushes"] += 1
            _stats["bytes"] += len(raw)
        self._reply(204)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stall", action="store_true")
    args = parser.parse_args()
    if args.stall:
        _stall.set()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
