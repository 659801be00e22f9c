"""Committed checkpoints from the laptop: list, inspect, prune and resume."""
