"""Measure the harness's own speed: ``python -m tests.cloud.measure [rounds]``.

Prints the time to start the harness (server, toolbox venv, first reset) and, per
round, a per-test reset and one launch + SendCommand (polled through the API, as a CLI
would, including the InvocationDoesNotExist window) + TerminateInstances, all through
plain boto3 clients. Not a test: performance is measured, never asserted, in tests.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.cloud.harness import Cloud


def _launch_command_terminate(cloud: Cloud) -> float:
    started = time.perf_counter()
    profile = cloud.create_instance_profile()
    ec2 = cloud.client("ec2")
    ssm = cloud.client("ssm")
    instance_id = ec2.run_instances(
        ImageId=cloud.amis["dl-ubuntu"],
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        IamInstanceProfile={"Arn": profile.arn},
    )["Instances"][0]["InstanceId"]
    command_id = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo hello"]},
    )["Command"]["CommandId"]
    while True:
        try:
            inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ssm.exceptions.InvocationDoesNotExist:
            time.sleep(0.05)
            continue
        if inv["Status"] == "Success":
            break
        if inv["Status"] not in ("Pending", "InProgress"):
            raise RuntimeError(inv)
        time.sleep(0.05)
    ec2.terminate_instances(InstanceIds=[instance_id])
    return time.perf_counter() - started


def main(rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="runctl-measure-") as tmp:
        started = time.perf_counter()
        cloud = Cloud(Path(tmp))
        cloud.start()
        cloud.begin_test()
        startup = time.perf_counter() - started
        print(f"start-up (server + toolbox + first reset): {startup:.2f} s")
        resets, cycles = [], []
        try:
            for _ in range(rounds):
                cloud.end_test()
                begun = time.perf_counter()
                cloud.begin_test()
                resets.append(time.perf_counter() - begun)
                cycles.append(_launch_command_terminate(cloud))
        finally:
            cloud.end_test()
            cloud.stop()
        print(f"per-test reset: median {statistics.median(resets) * 1000:.0f} ms")
        print(
            "launch + one command + terminate: "
            + ", ".join(f"{c:.2f}" for c in cycles)
            + f" s (median {statistics.median(cycles):.2f} s; first includes client set-up)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
