"""A job's cost end to end: spot time priced by every price in effect while it ran, plus its
EBS volumes and its S3 prefix, in ``jobs show`` and at the end of ``aws train --wait``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.aws_helpers import ok_json, run
from tests.cli.jobs_helpers import make_project, ready_instance
from tests.cli.spot_helpers import log_text, wait_until
from tests.cloud.harness import Cloud

STEPS = (
    "import time\nprint('begin', flush=True)\n"
    "while not __import__('os').path.exists('go'):\n    time.sleep(0.05)\nprint('end')\n"
)
COST_KEYS = ["usd", "compute_usd", "ebs_usd", "s3_usd", "instance_seconds", "usd_per_hour",
             "price_source", "storage_source"]  # fmt: skip


def test_spot_job_is_priced_by_the_prices_in_effect_and_storage_counted(
    cloud_env: Cloud, project: Path
) -> None:
    cloud = cloud_env
    make_project(project, {"steps.py": STEPS, "hello.py": "print('hi')\n"})
    zone = "us-east-1a"
    cloud.set_spot_price_history("t3.micro", zone, [(datetime.now(UTC) - timedelta(days=1), 0.002)])
    instance_id = ready_instance(cloud, spot=True, az=zone)
    started = json.loads(run("aws", "train", instance_id, "steps.py", "-o", "json").stdout)
    wait_until(lambda: "begin" in log_text(cloud, instance_id), what="the job running")
    # The price changes while the job runs: the job pays both, each for its own seconds.
    changed = datetime.now(UTC)
    cloud.set_spot_price_history(
        "t3.micro", zone, [(changed - timedelta(days=1), 0.002), (changed, 2.0)]
    )
    wait_until(lambda: datetime.now(UTC) - changed > timedelta(seconds=1), what="a second")
    for code_dir in cloud.sandbox(instance_id).rglob("steps.py"):
        (code_dir.parent / "go").write_text("")
    job = started["job_id"]
    wait_until(lambda: ok_json("jobs", "show", job)["state"] == "succeeded", what="the end")

    cost = ok_json("jobs", "show", job)["cost"]
    assert list(cost) == COST_KEYS
    assert 0.002 < cost["usd_per_hour"] < 2.0  # a mean of both prices, not today's 2.0
    assert "spot price history us-east-1a: 2 price(s) in effect" in cost["price_source"]
    assert cost["ebs_usd"] is not None and "EBS list prices: 1 volume(s)" in cost["storage_source"]
    assert cost["s3_usd"] is not None and "bytes under the job prefix" in cost["storage_source"]
    assert cost["usd"] == round(cost["compute_usd"] + cost["ebs_usd"] + cost["s3_usd"], 4)
    text = run("jobs", "show", job)
    assert "price source:" in text.stdout and "compute $" in text.stdout

    waited = run("aws", "train", instance_id, "hello.py", "--wait", "-o", "json")
    assert waited.exit_code == 0, waited.stderr
    assert list(json.loads(waited.stdout)["cost"]) == COST_KEYS
    assert "cost so far: $" in waited.stderr and "price source: spot price history" in waited.stderr
