"""Analyses over the per-deal and per-stay tables: pure functions returning tables and result objects with keys and numbers, never sentences."""
