"""Authentication and authorization policies: one module per condition.

Each policy is a pure function of the request facts and the projected records
(``policies.facts.AuthFacts``) returning a ``Decision``. ``policies.engine``
combines them deny-by-default. Nothing here imports Flask, Redis or RQ.
"""
