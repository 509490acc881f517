#!/usr/bin/env python3
"""A ClickHouse HTTP front over chDB, for testing our client against a
current ClickHouse release.

What is real and what is not: every statement runs in chDB
(`pip install chdb-core`), which is ClickHouse's own engine (26.x) as an
in-process library: the SQL parser and analyzer, MergeTree and its
Replacing/Summing variants, materialized views, TinyLog, the RowBinary and
TabSeparated formats are ClickHouse's code. The HTTP layer is ours, this
file: it implements only the part of ClickHouse's HTTP interface that
crates/ai-usage-clickhouse/src/client.rs uses, and is not ClickHouse's
server.

  - `GET /ping` (and `GET /`) answer `Ok.`.
  - `POST /` with the statement in the body; results in the statement's
    `FORMAT` (TabSeparated when it names none).
  - `POST /?query=INSERT … FORMAT RowBinary` with the rows in the body:
    the body is written to a temp file and inserted with
    `INSERT … FROM INFILE '<file>' FORMAT …`.
  - Errors as the server gives them: `Code: N. DB::Exception: …` text,
    header `X-ClickHouse-Exception-Code`, and the HTTP status ClickHouse
    maps the code to (400 bad query, 404 unknown object, else 500).
  - `query_id` is accepted and ignored; `Authorization` is not checked.

All statements go through ONE chDB session on a data path, one at a time
(a lock): the server's concurrency is not reproduced, its SQL is.

Usage: chdb_http.py DATA_DIR [PORT]   (PORT 0 or absent: any free port)
Prints `listening on 127.0.0.1:<port>` once it accepts connections.
"""

import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from chdb import session as chdb_session

# ClickHouse's mapping of error codes to HTTP statuses
# (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), for the codes a query
# of ours can plausibly raise; any other code is 500.
BAD_REQUEST = {6, 8, 15, 36, 44, 53, 62, 117}
NOT_FOUND = {46, 47, 50, 56, 60, 63, 73, 81, 115}

# The data clause of an INSERT whose rows come in the body.
INSERT_FORMAT = re.compile(r"^\s*INSERT\s.*?\s(FORMAT\s+\w+)\s*$", re.I | re.S)
ERROR_CODE = re.compile(r"Code:\s*(\d+)")


class Engine:
    """One chDB session, used by one request at a time."""

    def __init__(self, data_dir):
        self.lock = threading.Lock()
        self.session = chdb_session.Session(os.path.join(data_dir, "db"))
        self.spool = os.path.join(data_dir, "spool")
        os.makedirs(self.spool, exist_ok=True)

    def run(self, sql, rows=None):
        """Runs `sql`; `rows` are an INSERT's data (the body). Returns the
        answer's bytes; raises with ClickHouse's error text."""
        with self.lock:
            if rows is None:
                return self.session.query(sql, "TabSeparated").bytes()
            with tempfile.NamedTemporaryFile(dir=self.spool, suffix=".bin") as f:
                f.write(rows)
                f.flush()
                path = f.name.replace("\\", "\\\\").replace("'", "\\'")
                m = INSERT_FORMAT.match(sql)
                sql = f"{sql[:m.start(1)]}FROM INFILE '{path}' {m.group(1)}"
                return self.session.query(sql, "TabSeparated").bytes()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    engine = None  # set in main()

    def log_message(self, fmt, *args):  # quiet: tests read only stdout's first line
        pass

    def answer(self, status, body, code=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if code is not None:
            self.send_header("X-ClickHouse-Exception-Code", str(code))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query).get("query", [None])[0]
        if query is None:
            self.answer(200, b"Ok.\n")
        else:
            self.execute(query, None)

    def do_POST(self):
        body = self.read_body()
        query = parse_qs(urlsplit(self.path).query).get("query", [None])[0]
        if query is None:
            self.execute(body.decode("utf-8"), None)
        elif INSERT_FORMAT.match(query):
            self.execute(query, body)
        else:
            # As the server does: the URL's part, then the body's.
            self.execute(query + "\n" + body.decode("utf-8"), None)

    def execute(self, sql, rows):
        try:
            out = self.engine.run(sql, rows)
        except Exception as e:  # chDB raises its own error type with the server's text
            text = str(e).strip()
            m = ERROR_CODE.search(text)
            code = int(m.group(1)) if m else 1001  # STD_EXCEPTION
            if not m:
                text = f"Code: {code}. DB::Exception: {text}"
            status = 400 if code in BAD_REQUEST else 404 if code in NOT_FOUND else 500
            self.answer(status, (text + "\n").encode("utf-8"), code)
            return
        self.answer(200, out)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    Handler.engine = Engine(sys.argv[1])
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
