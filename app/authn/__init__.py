"""Authentication: gathers request facts, verifies keys, and asks the policies."""
