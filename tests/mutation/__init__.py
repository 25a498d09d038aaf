"""Mutation testing of the security-critical modules (``make mutate``, docs/mutation.md)."""
