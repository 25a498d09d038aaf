"""A small Flask service laid out as Flask's tutorial lays one out: its package is ``app``.

It protects its endpoints with keyledger in process, importing the extension
from the installed ``keyledger`` package. If keyledger installed (or imported)
a top-level ``app`` of its own, one of the two would shadow the other here.
"""

from __future__ import annotations

from flask import Flask, g

from keyledger import KeyLedger, require_api_key


def create_app() -> Flask:
    service = Flask(__name__)
    KeyLedger(service)

    @service.get("/orders")
    @require_api_key
    def orders() -> dict[str, str]:
        return {"service": "orders", "account": g.principal.account_id, "role": g.principal.role}

    @service.post("/orders")
    @require_api_key
    def create_order() -> tuple[dict[str, str], int]:
        return {"created": "order-1"}, 201

    @service.get("/whoami-package")
    def package() -> dict[str, str]:
        return {"app": __name__, "file": __file__}

    return service
