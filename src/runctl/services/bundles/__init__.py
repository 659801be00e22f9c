"""What runctl ships: the project's code bundle and runctl's own runtime bundle."""
