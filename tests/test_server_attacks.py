"""The attacks of issue 13, reproduced against a real ``perfkit serve`` on loopback: slow clients, idle
connections, one client holding many connections, a hub that never answers, malformed HTTP, a killed
worker, a busy port and a broken catalog. Each is bounded in count and in time (socket timeouts and the
server's own short limits, set by its options); none asserts a measured duration."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

import perfkit

TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
ROOT = Path(perfkit.__file__).resolve().parent.parent
#: The server's limits in these tests: short, so that each attack plays out in seconds.
FAST = ("--request-timeout", "2", "--idle-timeout", "2", "--client-connection-limit", "40",
        "--requests-per-connection", "5")


def _start(*options: str, env: dict | None = None, offline: bool = True):
    """``perfkit serve --port 0`` in a subprocess: (process, host, port) once it is listening."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_SECRET_KEY": "attacks", **(env or {})}
    args = [sys.executable, "-m", "perfkit.cli", "serve", "--port", "0", *(["--offline"] if offline else []),
            *options]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "perfkit API on " in line:
            host, port = line.split("http://")[1].split("/")[0].rsplit(":", 1)
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, host, int(port)
    raise AssertionError(f"perfkit serve did not start (exit status {proc.wait(timeout=30)})")


def _stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    proc, host, port = _start("--workers", "1", "--threads", "2", *FAST)
    yield host, port
    _stop(proc)


def _get(host: str, port: int, path: str, source: str = "127.0.0.1", timeout: float = 10.0):
    """One GET from ``source`` (another loopback address is another client): (status, headers, JSON)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0))
    with closing(conn):
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), json.loads(r.read())


def _open(host: str, port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
        out.append(s)
    return out


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def _json_body(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def test_slow_clients_are_cut_off_and_others_served(server):
    host, port = server
    body = json.dumps({"model_id": TINY, "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
                       "input_seq": 8, "output_seq": 8}).encode()
    slow = _open(host, port, 8)  # more slow clients than the server has threads
    for s in slow:  # headers, then the first body byte; the rest never comes
        s.sendall(b"POST /config/system-metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:1])
    try:
        for _ in range(3):  # health probes answer while the slow bodies trickle
            assert _get(host, port, "/api/health")[0] == 200
        for s in slow:  # each slow request is answered 408 (JSON) at the deadline and closed
            response = _read_all(s)
            assert response.startswith(b"HTTP/1.1 408 "), response[:80]
            assert "did not arrive whole" in _json_body(response)["error"]
    finally:
        for s in slow:
            s.close()


def test_slow_headers_are_cut_off_too(server):
    host, port = server
    with closing(_open(host, port, 1)[0]) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
        response = _read_all(s)  # the version is not known yet, so waitress answers in HTTP/1.0
        assert response.split(b" ", 2)[1] == b"408" and "did not arrive whole" in _json_body(response)["error"]


def test_idle_connections_do_not_lock_others_out_and_are_closed(server):
    host, port = server
    # 150 idle connections (past waitress's default limit of 100) from several client addresses
    idle = [s for i in range(5) for s in _open(host, port, 30, source=f"127.0.1.{i + 1}")]
    try:
        assert _get(host, port, "/api/health")[0] == 200
        assert _get(host, port, f"/api/layers?model_id={TINY}")[0] == 200
        for s in idle:  # the server closes each after the idle timeout: recv sees the end of the stream
            assert _read_all(s) == b""
    finally:
        for s in idle:
            s.close()


def test_one_client_cannot_hold_every_connection(server):
    host, port = server
    many = _open(host, port, 60, source="127.0.2.1")  # the per-client bound is 40 in these tests
    try:
        time.sleep(0.5)  # let the server accept them all (no assertion on time)
        refused = []
        for s in many[40:]:
            response = _read_all(s)
            refused.append(response)
        assert all(r.startswith(b"HTTP/1.1 503 ") for r in refused), refused[:1]
        assert "too many open connections" in _json_body(refused[0])["error"]
        assert _get(host, port, "/api/health", source="127.0.2.2")[0] == 200  # another client is served
    finally:
        for s in many:
            s.close()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /config/system-metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400),                      # a bad chunk size
    (b"POST /config/system-metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    (b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
    (b"POST /config/system-metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(6))
     + b"0\r\n\r\n", 413),                                                                 # 96 KiB chunked
    (b"GARBAGE\r\n\r\n", 400),
], ids=["bad-content-length", "bad-chunk-size", "gzip-chunked", "huge-header", "chunked-over-64KiB", "garbage"])
def test_http_level_errors_are_json(server, request_bytes, status):
    host, port = server
    with closing(_open(host, port, 1)[0]) as s:
        s.sendall(request_bytes)
        response = _read_all(s)
    assert response.split(b" ", 2)[:2] in ([b"HTTP/1.1", str(status).encode()],
                                             [b"HTTP/1.0", str(status).encode()]), response[:100]
    body = _json_body(response)
    assert set(body) == {"error", "field"} and body["error"]


def test_model_id_with_a_newline_is_400_over_http(server):
    host, port = server
    status, _, body = _get(host, port, "/api/layers?model_id=TinyLlama/TinyLlama-1.1B-Chat-v1.0%0A")
    assert status == 400 and body["field"] == "model_id"


def test_keep_alive_connections_are_recycled(server):
    host, port = server
    conn = http.client.HTTPConnection(host, port, timeout=10)
    with closing(conn):
        headers = []
        for _ in range(5):
            conn.request("GET", "/api/health")
            r = conn.getresponse()
            r.read()
            headers.append(r.getheader("Connection"))
    assert headers[-1] == "close" and "close" not in headers[:-1]


class NeverAnswers:
    """A 'hub' that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for c in self.accepted:
            c.close()


def test_a_hub_that_never_answers_holds_no_server_thread(tmp_path):
    hub = NeverAnswers()
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{hub.port}", "PERFKIT_HUB_TIMEOUT_S": "1",
           "HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1", "HF_HOME": str(tmp_path / "hf")}
    proc, host, port = _start("--workers", "1", "--threads", "2", *FAST, env=env, offline=False)
    try:
        results = {}

        def ask(i):
            results[i] = _get(host, port, f"/api/layers?model_id=acme/unknown-{i}", timeout=30)[::2]

        askers = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in askers:
            t.start()
        assert _get(host, port, "/api/health")[0] == 200                # while 8 unknown ids wait on the hub
        assert _get(host, port, f"/api/layers?model_id={TINY}")[0] == 200  # bundled models never wait
        for t in askers:
            t.join(60)
        assert sorted(results) == list(range(8))
        assert all(status == 404 and body["field"] == "model_id" for status, body in results.values()), results
        seen = len(hub.accepted)
        assert seen >= 1  # the look-ups did reach the silent hub
        for i in range(2):  # a failed id is remembered: asking again does not reach the hub
            status, _, body = _get(host, port, f"/api/layers?model_id=acme/unknown-{i}")
            if "did not answer" in body["error"]:
                assert status == 404
        assert len(hub.accepted) <= seen + 1  # at most one new look-up (ids that were refused as busy)
    finally:
        _stop(proc)
        hub.close()


def test_a_killed_worker_is_replaced():
    psutil = pytest.importorskip("psutil")
    proc, host, port = _start("--workers", "2", "--threads", "2", *FAST)
    try:
        parent = psutil.Process(proc.pid)
        workers = parent.children()
        assert len(workers) == 2
        workers[0].kill()
        for _ in range(100):  # bounded: 100 polls
            alive = [w for w in parent.children() if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
            if len(alive) == 2 and workers[0].pid not in {w.pid for w in alive}:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the killed worker was not replaced")
        statuses = {_get(host, port, "/api/health")[0] for _ in range(20)}
        assert statuses == {200}
    finally:
        _stop(proc)


def test_busy_port_is_a_one_line_error():
    with closing(socket.create_server(("127.0.0.1", 0))) as busy:
        port = busy.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_SECRET_KEY": "x"}
        out = subprocess.run([sys.executable, "-m", "perfkit.cli", "serve", "--offline", "--port", str(port)],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"perfkit: error: cannot listen on 127.0.0.1:{port}: Address already in use (another "
                      "server is using it: stop it or choose another --port)"], out.stderr
    assert "Traceback" not in out.stderr


def test_broken_catalog_stops_serve_with_the_message(tmp_path):
    folder = tmp_path / "hardware"
    folder.mkdir()
    for path in (ROOT / "hardware").glob("*.yaml"):
        text = path.read_text()
        if path.stem == "nvidia_h100_hgx":
            text = text.replace("scaleup_latency_s: 0.000001", "scaleup_latency_s: -0.9")
        (folder / path.name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_SECRET_KEY": "x", "PERFKIT_HARDWARE_DIR": str(folder)}
    out = subprocess.run([sys.executable, "-m", "perfkit.cli", "serve", "--offline", "--port", "0"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("perfkit: error: the catalog has 1 problem, so perfkit serve does not start: hardware "
            "'nvidia_h100_hgx': scaleup_latency_s must be a number between 0 and 1, got -0.9") in out.stderr
    assert str(tmp_path) not in out.stderr
