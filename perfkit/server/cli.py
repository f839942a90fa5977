"""``perfkit serve``: the HTTP API on a production WSGI server, or Flask's debug server with ``--debug``.

One process (the default) runs waitress with ``--threads`` threads. The engine is CPU-bound Python and
numpy, so threads share one core; ``--workers N`` (N > 1) runs N gunicorn processes instead (Linux and
macOS), forked from one app so that they sign session cookies with the same key.
"""
from __future__ import annotations

import logging
import os

from ..errors import PerfkitError

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (waitress or gunicorn; Flask's debug server with --debug)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=8, help="threads per process (default 8)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes (default 1: waitress; more: gunicorn, to use several cores)")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (repeatable; default: CORS off)")
    p.add_argument("--offline", action="store_true",
                   help="never look models up on the Hugging Face hub (bundled and local configs only)")
    p.add_argument("--debug", action="store_true", help="Flask's development server with the debugger")
    p.set_defaults(func=serve)


def serve(args) -> int:
    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # waitress warns on every request that waits for a free thread: routine under load, noise in the log
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if args.threads < 1 or args.workers < 1 or not 0 <= args.port <= 65535:
        raise PerfkitError("--threads and --workers must be at least 1 and --port between 0 and 65535")
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    # made once, before gunicorn forks: every worker then signs cookies with the same key
    app = create_app(cors_origins=args.cors_origin)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, threaded=True)
    elif args.workers > 1:
        _gunicorn(app, args)
    else:
        _waitress(app, args)
    return 0


def _listening(host: str, port: int, how: str) -> None:
    log.info("perfkit API on http://%s:%s/ (%s)", host, port, how)


def _waitress(app, args) -> None:
    from waitress import create_server

    # waitress refuses absurd bodies itself; Flask answers the merely oversized ones with a JSON 413
    server = create_server(app, host=args.host, port=args.port, threads=args.threads, ident="perfkit",
                           max_request_body_size=16 * app.config["MAX_CONTENT_LENGTH"])
    _listening(*server.getsockname()[:2], f"waitress, {args.threads} threads")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _gunicorn(app, args) -> None:
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        raise PerfkitError("--workers above 1 needs gunicorn (pip install 'perfkit[server]'; not on Windows)") from None

    def when_ready(server):
        for listener in server.LISTENERS:
            _listening(*listener.sock.getsockname()[:2], f"gunicorn, {args.workers} workers x {args.threads} threads")

    class Server(BaseApplication):
        def load_config(self):
            settings = {"bind": f"{args.host}:{args.port}", "workers": args.workers, "threads": args.threads,
                        "worker_class": "gthread", "preload_app": True, "when_ready": when_ready}
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24 would open ~/.gunicorn/*.ctl
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()
