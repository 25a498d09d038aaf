"""Projections: pure functions from one event to Redis writes on a pipeline.

They only write (never read), so a batch of events, its checkpoint and its
acknowledgement commit together in one MULTI/EXEC.
"""
