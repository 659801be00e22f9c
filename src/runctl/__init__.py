"""runctl: run ML training on AWS EC2 and keep its checkpoints safe."""

from __future__ import annotations

__version__ = "0.1.0"
