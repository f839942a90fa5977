"""``perfkit serve``: the HTTP API on waitress (a production WSGI server), or Flask's debug server."""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (waitress; Flask's development server with --debug)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="allow cross-origin requests from ORIGIN (repeatable; default: CORS off)")
    p.add_argument("--offline", action="store_true",
                   help="never look models up on the Hugging Face hub (bundled and local configs only)")
    p.add_argument("--debug", action="store_true", help="Flask's development server with the debugger")
    p.set_defaults(func=serve)


def serve(args) -> int:
    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    if args.threads < 1 or not 0 <= args.port <= 65535:
        from ..errors import PerfkitError

        raise PerfkitError("--threads must be at least 1 and --port between 0 and 65535")
    app = create_app(cors_origins=args.cors_origin)
    if args.debug:
        app.run(host=args.host, port=args.port, debug=True, threaded=True)
        return 0
    from waitress import create_server

    # waitress refuses absurd bodies itself; Flask answers the merely oversized ones with a JSON 413
    server = create_server(app, host=args.host, port=args.port, threads=args.threads, ident="perfkit",
                           max_request_body_size=16 * app.config["MAX_CONTENT_LENGTH"])
    log.info("perfkit API on http://%s:%s/ (%d threads)", *server.getsockname()[:2], args.threads)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
