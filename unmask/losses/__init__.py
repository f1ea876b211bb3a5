"""Losses under one contract (see base.Loss)."""
