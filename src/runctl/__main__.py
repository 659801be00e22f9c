"""Allow ``python -m runctl``."""

from __future__ import annotations

from runctl.cli.app import main

if __name__ == "__main__":
    main()
