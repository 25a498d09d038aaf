"""Protect another Flask service in process, against keyledger's Redis, with the same policies.

::

    from flask import Flask, g
    from keyledger.web.extension import KeyLedger, require_api_key

    service = Flask(__name__)
    KeyLedger(service)                 # reads REDIS_URL and KEYLEDGER_* like keyledger

    @service.get("/orders")
    @require_api_key
    def orders():
        return {"account": g.principal.account_id, "role": g.principal.role}

``KeyLedger(service, protect_all=True)`` guards every endpoint instead (deny by
default), except those named in ``public``. The records come from the
projections the keyledger projector maintains; the extension never writes.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Response, request
from redis.exceptions import RedisClusterException, RedisError

from keyledger.adapters.ratelimit import RateLimiter
from keyledger.bootstrap import Container, build
from keyledger.config import Settings
from keyledger.domain.errors import KeyledgerError
from keyledger.web import errors
from keyledger.web.auth import Gate, require_api_key, stamp

__all__ = ["KeyLedger", "require_api_key"]


class KeyLedger:
    def __init__(
        self,
        app: Flask | None = None,
        settings: Settings | None = None,
        *,
        protect_all: bool = False,
        public: Iterable[str] = ("static",),
    ):
        self.settings = settings
        self.protect_all = protect_all
        self.public = frozenset(public)
        self.container: Container | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        container = build(self.settings or Settings.from_env())
        self.container = container
        gate = Gate(
            container.authenticator,
            RateLimiter(
                container.redis,
                container.keyspace,
                container.settings.rate_limit_per_minute,
                capacity=container.settings.auth_cache_size,
            ),
            container.last_use,
        )
        app.extensions["keyledger"] = container
        app.extensions["keyledger.gate"] = gate
        app.register_error_handler(KeyledgerError, errors.handle_keyledger_error)
        app.register_error_handler(RedisError, errors.handle_redis_error)
        app.register_error_handler(RedisClusterException, errors.handle_redis_error)
        app.after_request(stamp)
        if self.protect_all:

            @app.before_request
            def guard() -> Response | None:
                if request.endpoint in self.public:
                    return None
                admitted = gate.admit(request.method, request.path)
                return admitted if isinstance(admitted, Response) else None
