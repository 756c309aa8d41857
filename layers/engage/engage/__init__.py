"""Engage: gamified engagement backend (shared Lambda layer package)."""
