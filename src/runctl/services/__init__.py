"""Workflows: launch, instances, jobs, checkpoints, resources; no typer, no rich."""
