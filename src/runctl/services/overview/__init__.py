"""Seeing what runs: ``status``, ``top`` and ``doctor``."""
