"""The command-line interface: Typer commands that parse, call a service and render."""
