"""The per-event step: stage events to one row per deal (reach) and per stay, in pandas or an SQL engine, and the scoped view that computes them once per report."""
