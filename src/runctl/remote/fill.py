"""Fill a directory (a mounted EBS volume) from S3 on the instance:
``python3 -m runctl.remote.fill --source s3://B/prefix/ --dest /mnt/prewarm``.

What ``runctl aws ebs pre-warm`` runs through SSM. The copy is the runner's own data staging
(:func:`runctl.remote.staging.download_into`: a sync, so a second run copies only what is
missing or changed), with the instance role's credentials. Prints one JSON line: ``files``,
``bytes``, ``seconds``, ``mb_per_s`` and ``dest``; on failure ``error`` and ``message`` with
exit status 1 (4 when the role may not read the source).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m runctl.remote.fill")
    parser.add_argument("--source", required=True, help="s3://BUCKET/prefix/ or one object")
    parser.add_argument("--dest", required=True, help="the directory to fill")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    from runctl.aws.session import AwsContext
    from runctl.errors import RunctlError
    from runctl.remote.staging import StagingError, download_into

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or args.region
    try:
        client = AwsContext(config_region=region, on_instance=True).s3()
        report = download_into(client, args.source, Path(args.dest), retry="run the pre-warm again")
    except StagingError as exc:
        _print({"error": "AuthError", "message": str(exc), "exit_code": 4})
        return 4
    except (RunctlError, OSError) as exc:
        _print({"error": type(exc).__name__, "message": str(exc), "exit_code": 1})
        return 1
    _print({**report.to_dict(), "dest": args.dest})
    return 0


def _print(data: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
