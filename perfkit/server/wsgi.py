"""The production server of ``perfkit serve``: waitress, hardened, one process per core.

Why waitress: its main thread reads every request in full (headers and body, chunked or not) before a
worker thread sees it, so a slow client costs a connection slot, never a thread; it checks the body size
while it reads; it is pure Python (Linux, macOS, Windows). What it lacks is added here, each bound per
process:

- ``request_timeout_s``: a request must arrive whole (first byte to last) within this; a slower one gets a
  JSON 408 and its connection is closed (headers, then one body byte per second, is cut off here);
- ``idle_timeout_s``: a keep-alive connection with no request in flight is closed after this;
- ``connection_limit`` open connections, of which ``client_connection_limit`` from one address; a
  connection past the per-client bound gets a JSON 503 and is closed at once, so one client cannot fill the
  server;
- ``requests_per_connection``: then the answer says ``Connection: close`` and the client reconnects, so that
  keep-alive clients spread over the processes again after one was restarted (nginx's ``keepalive_requests``);
- every error waitress itself answers (400 malformed request, 408, 413, 431, 501) is JSON
  ``{"error", "field"}``, like the application's.

The engine is CPU-bound Python and numpy, so one process serves one core (the GIL): ``workers`` processes
share one listening socket, forked from one app (so that they sign session cookies with the same key); the
parent restarts a worker that dies. Windows has no ``fork``: one process there.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import Error

from ..errors import PerfkitError

log = logging.getLogger(__name__)


def default_workers() -> int:
    """One process per core this process may run on (at most 8), or 1 where ``fork`` is missing."""
    if not hasattr(os, "fork"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


@dataclass(frozen=True)
class Limits:
    """How ``perfkit serve`` bounds each client (per process); see the module docstring."""

    workers: int = 1
    threads: int = 4
    connection_limit: int = 1000
    client_connection_limit: int = 256
    idle_timeout_s: int = 15
    request_timeout_s: float = 10.0
    requests_per_connection: int = 1000
    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 32 * 1024


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


def _json_error(reason: str, detail: str) -> bytes:
    return json.dumps({"error": f"{reason}: {detail}".strip(), "field": None}).encode()


class _Parser(HTTPRequestParser):
    """Remembers when a request's first byte arrived (for ``request_timeout_s``)."""

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()


class _ErrorTask(ErrorTask):
    """waitress's own error answers (400, 408, 413, 431, 501, 500) as JSON."""

    def execute(self):
        error = self.request.error
        body = _json_error(error.reason, " ".join(str(error.body).split())[:500])
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    parser_class = _Parser
    error_task_class = _ErrorTask
    served = 0

    def service(self):
        self.served += 1
        if self.served >= self.server.limits.requests_per_connection and self.requests:
            self.requests[0].headers["CONNECTION"] = "close"  # waitress then answers Connection: close
        super().service()


_BUSY = _json_error("Service Unavailable", "too many open connections from this address")
_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, app, sock: socket.socket, limits: Limits):
        self.limits = limits
        adj = Adjustments(
            threads=limits.threads, connection_limit=limits.connection_limit, channel_timeout=limits.idle_timeout_s,
            cleanup_interval=1, asyncore_use_poll=True, ident="perfkit", backlog=1024,
            max_request_body_size=limits.max_body_bytes, max_request_header_size=limits.max_header_bytes,
            expose_tracebacks=False,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(limits.threads)
        super().__init__(app, map={}, _sock=sock, dispatcher=dispatcher, adj=adj, bind_socket=False,
                         sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))

    def handle_accept(self):
        try:
            pair = self.accept()
        except OSError:
            return
        if pair is None:
            return
        conn, addr = pair
        host = addr[0]
        if sum(1 for c in self.active_channels.values() if c.addr and c.addr[0] == host) >= \
                self.limits.client_connection_limit:
            try:
                conn.setblocking(False)
                conn.send(_BUSY_RESPONSE)
            except OSError:
                pass
            conn.close()
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def maintenance(self, now):
        """Close idle keep-alive connections; answer 408 to requests that arrive too slowly."""
        idle_cutoff = now - self.adj.channel_timeout
        deadline = time.monotonic() - self.limits.request_timeout_s
        for channel in list(self.active_channels.values()):
            request = channel.request  # a request still arriving
            if request is None:
                if not channel.requests and channel.last_activity < idle_cutoff:
                    channel.will_close = True
            elif getattr(request, "started", deadline) < deadline and not channel.will_close:
                self._time_out(channel, request)

    def _time_out(self, channel, request) -> None:
        with channel.requests_lock:
            if channel.request is not request:
                return
            request.error = RequestTimeout(f"the request did not arrive whole within "
                                           f"{self.limits.request_timeout_s:g} s")
            request.completed = True
            channel.request = None
            channel.requests.append(request)
            if len(channel.requests) == 1:
                self.add_task(channel)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; a busy port or a bad address is a one-line :class:`PerfkitError`."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=1024, reuse_port=False)
    except OSError as exc:
        hint = " (another server is using it: stop it or choose another --port)" if exc.errno in (48, 98, 10048) else ""
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise PerfkitError(f"cannot listen on {host}:{port}: {reason}{hint}") from None


def run_one(app, sock: socket.socket, limits: Limits) -> None:
    """Serve ``app`` on ``sock`` in this process until interrupted."""
    server = _Server(app, sock, limits)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def serve(app, sock: socket.socket, limits: Limits, announce) -> None:
    """Call ``announce(host, port, how)`` and serve on ``sock`` (from :func:`bind`) with ``limits.workers``
    processes."""
    bound = sock.getsockname()[:2]
    how = f"waitress, {limits.workers} process{'es' if limits.workers > 1 else ''} x {limits.threads} threads"
    if limits.workers == 1:
        announce(*bound, how)
        run_one(app, sock, limits)
        return
    _supervise(app, sock, limits, lambda: announce(*bound, how))


def _supervise(app, sock: socket.socket, limits: Limits, announce) -> None:
    """Fork ``limits.workers`` workers on one socket; restart any that dies until SIGTERM or SIGINT."""
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                run_one(app, sock, limits)
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(limits.workers):
            spawn()
        announce()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if stopping or started is None:
                continue
            log.warning("worker %d ended (status %d); starting another", pid, status)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # a worker that dies at once is not restarted in a tight loop
            spawn()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
