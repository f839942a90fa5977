"""``perfkit serve``: the HTTP API on its production server (:mod:`perfkit.server.wsgi`: waitress, one
process per core, each client bounded), or Flask's debug server with ``--debug``.

The catalog is checked before the server starts: a broken hardware file, serving profile or model config
stops ``perfkit serve`` with the message (exit status 2), and so does a port that is already in use.
"""
from __future__ import annotations

import logging
import os

from ..errors import PerfkitError

log = logging.getLogger(__name__)


def register(sub) -> None:
    from .cache import DEFAULT_SIZE
    from .wsgi import Limits, default_workers

    d = Limits()
    p = sub.add_parser("serve", help="serve the HTTP API (waitress, one process per core; Flask's debug server "
                                     "with --debug)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"processes (default: one per core, here {default_workers()})")
    p.add_argument("--threads", type=int, default=d.threads, help=f"threads per process (default {d.threads})")
    p.add_argument("--request-timeout", type=float, default=d.request_timeout_s, metavar="S",
                   help=f"a request must arrive whole within S seconds, else 408 (default {d.request_timeout_s:g})")
    p.add_argument("--idle-timeout", type=int, default=d.idle_timeout_s, metavar="S",
                   help=f"close keep-alive connections idle for S seconds (default {d.idle_timeout_s})")
    p.add_argument("--connection-limit", type=int, default=d.connection_limit, metavar="N",
                   help=f"open connections per process (default {d.connection_limit})")
    p.add_argument("--client-connection-limit", type=int, default=d.client_connection_limit, metavar="N",
                   help=f"open connections per client address per process (default {d.client_connection_limit})")
    p.add_argument("--requests-per-connection", type=int, default=d.requests_per_connection, metavar="N",
                   help=f"answer Connection: close after N requests on one connection, so that clients spread "
                        f"over the processes again (default {d.requests_per_connection})")
    p.add_argument("--response-cache", type=int, default=DEFAULT_SIZE, metavar="N",
                   help=f"answer repeated stateless requests from a cache of N entries per process (default "
                        f"{DEFAULT_SIZE}; 0 turns it off)")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (repeatable; default: CORS off)")
    p.add_argument("--offline", action="store_true",
                   help="never look models up on the Hugging Face hub (bundled and local configs only)")
    p.add_argument("--debug", action="store_true", help="Flask's development server with the debugger")
    p.set_defaults(func=serve)


def limits_of(args):
    """The :class:`~perfkit.server.wsgi.Limits` the options ask for; a value out of range is an error."""
    from .app import MAX_BODY_BYTES
    from .wsgi import Limits, default_workers

    workers = default_workers() if args.workers is None else args.workers
    if args.threads < 1 or workers < 1 or not 0 <= args.port <= 65535:
        raise PerfkitError("--threads and --workers must be at least 1 and --port between 0 and 65535")
    if not (args.request_timeout > 0 and args.idle_timeout >= 1 and args.connection_limit >= 1
            and 1 <= args.client_connection_limit and args.requests_per_connection >= 1):
        raise PerfkitError("--request-timeout must be positive, --idle-timeout at least 1 s, and the connection "
                           "limits at least 1")
    return Limits(workers=workers, threads=args.threads, connection_limit=args.connection_limit,
                  client_connection_limit=args.client_connection_limit, idle_timeout_s=args.idle_timeout,
                  request_timeout_s=args.request_timeout, requests_per_connection=args.requests_per_connection,
                  max_body_bytes=MAX_BODY_BYTES)


def serve(args) -> int:
    from .. import catalog
    from . import wsgi
    from .app import create_app
    from .cache import CONFIG_KEY as RESPONSE_CACHE

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # waitress warns on every request that waits for a free thread: routine under load, noise in the log
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    limits = limits_of(args)
    if limits.workers > 1 and not hasattr(os, "fork"):
        raise PerfkitError("--workers above 1 needs os.fork (Linux or macOS); use --workers 1 here")
    if args.response_cache < 0:
        raise PerfkitError(f"--response-cache must be 0 (off) or a number of entries, got {args.response_cache}")
    problems = catalog.catalog_problems()
    if problems:
        raise PerfkitError(f"the catalog has {len(problems)} problem{'s' if len(problems) > 1 else ''}, so "
                           "perfkit serve does not start: " + "; ".join(problems))
    if args.debug:
        app = create_app({RESPONSE_CACHE: args.response_cache}, cors_origins=args.cors_origin)
        app.run(host=args.host, port=args.port, debug=True, threaded=True)
        return 0
    sock = wsgi.bind(args.host, args.port)  # a busy port is a one-line error before anything else
    try:
        # made once, before the workers fork: every worker then signs cookies with the same key
        app = create_app({RESPONSE_CACHE: args.response_cache}, cors_origins=args.cors_origin)
        wsgi.serve(app, sock, limits, _listening)
    finally:
        sock.close()
    return 0


def _listening(host: str, port: int, how: str) -> None:
    log.info("perfkit API on http://%s:%s/ (%s)", host, port, how)
