"""Adapters: everything that talks to Redis lives here (and in ``workers/``)."""
