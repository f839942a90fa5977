"""A bounded cache of whole answers of the stateless POST endpoints, keyed by the request as sent.

``POST /config/system-metrics`` and ``POST /config/layer-metrics`` answer a pure function of the request body
and the catalog, and the catalog is read once per process (``functools.cache``; perfkit has no reload): the
same request gets the same bytes back. A UI asks the same few questions over and over (its defaults, a
slider moved back), and so does a load test; this WSGI middleware, in front of Flask, answers a repeat from
memory, skipping the body parsing, the engine and the JSON encoding.

What is cached, and what never is:

- only a ``200`` answer without ``Set-Cookie`` to a request without ``Cookie`` (the deprecated session flow
  depends on its cookie); errors (4xx, 5xx) always go through the application, so a failure can never be
  served to a request that would now succeed;
- the key is everything a ``200`` answer can depend on: path, query string, ``Content-Type``, ``Origin``
  (CORS headers) and the body's bytes; two spellings of one JSON object are two entries, never a wrong answer;
- bodies up to ``max_body_bytes`` and answers up to ``max_answer_bytes`` (larger ones are served, not kept),
  at most ``size`` entries, least recently used out first: memory stays under ``size x (max_body_bytes +
  max_answer_bytes)``, 32 MiB at the defaults.

>>> from perfkit.server import create_app
>>> app = create_app({"SECRET_KEY": "doc"})
>>> body = {"model_id": "meta-llama/Llama-3.1-8B", "hardware_config": "nvidia_h100_hgx", "batch_size": 1,
...         "input_seq": 1024, "output_seq": 128}
>>> first, again = (app.test_client().post("/config/system-metrics", json=body) for _ in range(2))
>>> first.data == again.data, response_cache(app).info()["hits"]
(True, 1)
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict

#: The endpoints whose answers are pure functions of the request (see the module docstring).
CACHED_PATHS = frozenset(("/config/system-metrics", "/config/layer-metrics"))
#: Entries kept by default (``perfkit serve --response-cache N``; 0 turns the cache off).
DEFAULT_SIZE = 1024
#: The Flask ``config`` key of the size, and the ``app.extensions`` key of the cache.
CONFIG_KEY = "PERFKIT_RESPONSE_CACHE"


class ResponseCache:
    """WSGI middleware: ``app.wsgi_app = ResponseCache(app.wsgi_app)`` (see the module docstring)."""

    def __init__(self, app, size: int = DEFAULT_SIZE, max_body_bytes: int = 16 * 1024,
                 max_answer_bytes: int = 16 * 1024):
        if size < 1:
            raise ValueError(f"a response cache holds at least 1 entry, got {size}")
        self.app = app
        self.size, self.max_body_bytes, self.max_answer_bytes = size, max_body_bytes, max_answer_bytes
        self._entries: OrderedDict[tuple, tuple[str, list, bytes]] = OrderedDict()
        self._lock = threading.Lock()  # waitress serves on several threads
        self.hits = self.misses = 0

    def __call__(self, environ, start_response):
        body = self._cacheable_body(environ)
        if body is None:
            return self.app(environ, start_response)
        key = (environ.get("PATH_INFO"), environ.get("QUERY_STRING", ""), environ.get("CONTENT_TYPE", ""),
               environ.get("HTTP_ORIGIN"), body)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if hit is not None:
            status, headers, answer = hit
            start_response(status, list(headers))
            return [answer]
        environ["wsgi.input"] = io.BytesIO(body)  # the application reads the body again
        seen = {}

        def capture(status, headers, exc_info=None):
            seen.update(status=status, headers=headers, failed=exc_info is not None)
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        try:
            answer = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if (seen.get("status", "").startswith("200 ") and not seen["failed"]
                and len(answer) <= self.max_answer_bytes
                and not any(name.lower() == "set-cookie" for name, _ in seen["headers"])):
            with self._lock:
                self._entries[key] = (seen["status"], list(seen["headers"]), answer)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return [answer]

    def _cacheable_body(self, environ) -> bytes | None:
        """The request body, read in full, if the answer may be cached; None (nothing read) otherwise."""
        if (environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") not in CACHED_PATHS
                or "HTTP_COOKIE" in environ):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= self.max_body_bytes:
            return None
        body = environ["wsgi.input"].read(length)
        if len(body) != length:  # a short body: let the application see exactly what arrived
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            return None
        return body

    def clear(self) -> None:
        """Forget every answer (for a caller that changed the catalog under a running app)."""
        with self._lock:
            self._entries.clear()

    def info(self) -> dict:
        """``entries``, ``size``, ``hits`` and ``misses`` so far."""
        with self._lock:
            return {"entries": len(self._entries), "size": self.size, "hits": self.hits, "misses": self.misses}


def response_cache(app) -> ResponseCache | None:
    """The cache :func:`perfkit.server.create_app` put in front of ``app`` (None when it is off)."""
    return app.extensions.get(CONFIG_KEY)
