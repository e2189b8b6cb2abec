"""A pass-through HTTP proxy in front of moto's S3 server that can refuse uploads: while `refusing` is set, every PUT
of the first checkpoint object it sees (and its retries) gets a 500 InternalError, as an S3 endpoint having a bad
minute answers. Everything else, and that object once `refusing` is cleared, reaches moto unchanged. moto has no
fault injection of its own for S3, and stopping it would lose the objects it holds in memory."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
REFUSAL = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code><Message>injected</Message></Error>"


class S3Proxy:
    def __init__(self, upstream: str, refused_suffix: str = "/model.pt"):
        self.upstream = urlparse(upstream)
        self.refused_suffix, self.refused_path, self.refusals = refused_suffix, None, 0
        self.refusing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    data = b""
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _handle(self):
                body = self._body()
                path = self.path.split("?")[0]
                if self.command == "PUT" and proxy.refusing.is_set() and path.endswith(proxy.refused_suffix):
                    proxy.refused_path = proxy.refused_path or path
                    if path == proxy.refused_path:
                        proxy.refusals += 1
                        return self._send(500, {"Content-Type": "application/xml"}, REFUSAL)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    headers["Content-Length"] = str(len(body))
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                    self._send(
                        answer.status,
                        {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | {"content-length"}},
                        data,
                        head=self.command == "HEAD",
                        length=answer.getheader("Content-Length"),
                    )
                finally:
                    connection.close()

            def _send(self, status, headers, data, head=False, length=None):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", length if head and length is not None else str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> S3Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
