"""Tests of the harness's SSM Run Command, through plain boto3 clients."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.harness import Cloud


def send(cloud: Cloud, instance_id: str, commands: list[str], **params: list[str]) -> str:
    ssm = cloud.client("ssm")
    result = ssm.send_command(
        InstanceIds=[instance_id],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": commands, **params},
    )
    command_id: str = result["Command"]["CommandId"]
    return command_id


def wait(cloud: Cloud, command_id: str, instance_id: str, timeout: float = 120) -> dict[str, Any]:
    ssm = cloud.client("ssm")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            inv: dict[str, Any] = ssm.get_command_invocation(
                CommandId=command_id, InstanceId=instance_id
            )
        except ssm.exceptions.InvocationDoesNotExist:
            time.sleep(0.05)
            continue
        if inv["Status"] not in ("Pending", "InProgress", "Delayed", "Cancelling"):
            return inv
        time.sleep(0.05)
    raise TimeoutError(command_id)


def test_exit_code_and_output_come_back(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    cid = send(cloud, iid, ["echo out-line", "echo err-line >&2", "exit 7"])
    inv = wait(cloud, cid, iid)
    assert inv["Status"] == "Failed"
    assert inv["StatusDetails"] == "Failed"
    assert inv["ResponseCode"] == 7
    assert inv["StandardOutputContent"] == "out-line\n"
    assert inv["StandardErrorContent"] == "err-line\nfailed to run commands: exit status 7"
    assert inv["PluginName"] == "aws:runShellScript"
    assert inv["ExecutionStartDateTime"].endswith("Z")
    assert inv["ExecutionElapsedTime"].startswith("PT")

    cid = send(cloud, iid, ["echo ok"])
    inv = wait(cloud, cid, iid)
    assert (inv["Status"], inv["ResponseCode"], inv["StandardOutputContent"]) == (
        "Success",
        0,
        "ok\n",
    )
    assert inv["StandardErrorContent"] == ""


def test_commands_run_once_only_on_the_targeted_instance(cloud: Cloud) -> None:
    first = cloud.run_instance()
    second = cloud.run_instance()
    cid = send(cloud, first, ["echo $RUNCTL_HARNESS_INSTANCE >> $HOME/ran"])
    assert wait(cloud, cid, first)["Status"] == "Success"
    assert (cloud.sandbox(first) / "ran").read_text() == f"{first}\n"
    assert not (cloud.sandbox(second) / "ran").exists()
    ssm = cloud.client("ssm")
    with pytest.raises(ClientError) as err:
        ssm.get_command_invocation(CommandId=cid, InstanceId=second)
    assert err.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    listed = ssm.list_command_invocations(CommandId=cid)["CommandInvocations"]
    assert [i["InstanceId"] for i in listed] == [first]


def test_targets_by_tag(cloud: Cloud) -> None:
    tagged = cloud.run_instance(tags={"runctl:job": "a"})
    cloud.run_instance(tags={"runctl:job": "b"})
    ssm = cloud.client("ssm")
    sent = ssm.send_command(
        Targets=[{"Key": "tag:runctl:job", "Values": ["a"]}],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["true"]},
    )["Command"]
    assert sent["TargetCount"] == 1
    assert wait(cloud, sent["CommandId"], tagged)["Status"] == "Success"


def test_output_is_truncated_like_ssm(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    cid = send(
        cloud,
        iid,
        [
            "python3 -c \"import sys; sys.stdout.write('o' * 30000)\"",
            "python3 -c \"import sys; sys.stderr.write('e' * 10000)\"",
        ],
    )
    inv = wait(cloud, cid, iid)
    assert inv["Status"] == "Success"
    assert inv["StandardOutputContent"] == "o" * 24000
    assert inv["StandardErrorContent"] == "e" * 8000
    listed = cloud.client("ssm").list_command_invocations(CommandId=cid, Details=True)
    plugin = listed["CommandInvocations"][0]["CommandPlugins"][0]
    assert plugin["Name"] == "aws:runShellScript"
    assert len(plugin["Output"]) == 2500
    assert plugin["ResponseCode"] == 0


def test_plugin_output_shows_stderr_after_stdout(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    cid = send(cloud, iid, ["echo a", "echo b >&2", "exit 1"])
    wait(cloud, cid, iid)
    listed = cloud.client("ssm").list_command_invocations(InstanceId=iid, Details=True)
    inv = listed["CommandInvocations"][0]
    assert inv["Status"] == "Failed"
    output = inv["CommandPlugins"][0]["Output"]
    assert output == "a\n\n----------ERROR-------\nb\nfailed to run commands: exit status 1"
    brief = cloud.client("ssm").list_command_invocations(InstanceId=iid)
    assert brief["CommandInvocations"][0]["CommandPlugins"] == []


def test_execution_timeout_kills_and_times_out(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    cid = send(
        cloud,
        iid,
        ["echo started", "sleep 30 & echo $! > $HOME/child.pid", "sleep 30"],
        executionTimeout=["1"],
    )
    inv = wait(cloud, cid, iid)  # the script alone would run 30 s: only the timeout ends it
    assert inv["Status"] == "TimedOut"
    assert inv["StatusDetails"] == "ExecutionTimedOut"
    assert inv["ResponseCode"] == 137
    assert inv["StandardOutputContent"] == "started\n"
    child = int((cloud.sandbox(iid) / "child.pid").read_text())
    cloud.wait_for(lambda: not _alive(child), timeout=5)


def test_invocation_does_not_exist_right_after_send(cloud: Cloud) -> None:
    # Held invisible and undelivered until the test says otherwise.
    cloud.ssm_invocation_delay = 3600.0
    cloud.ssm_delivery_delay = 3600.0
    iid = cloud.run_instance()
    ssm = cloud.client("ssm")
    cid = send(cloud, iid, ["true"])
    with pytest.raises(ClientError) as err:
        ssm.get_command_invocation(CommandId=cid, InstanceId=iid)
    assert err.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ssm.list_command_invocations(CommandId=cid)["CommandInvocations"] == []
    assert ssm.list_commands(CommandId=cid)["Commands"][0]["Status"] == "Pending"
    cloud.ssm_invocation_delay = cloud.ssm_delivery_delay = 0.0
    assert wait(cloud, cid, iid)["Status"] == "Success"


def test_invocation_delay_counts_from_the_send(cloud: Cloud) -> None:
    cloud.ssm_invocation_delay = 0.4
    iid = cloud.run_instance()
    sent_at = time.monotonic()
    cid = send(cloud, iid, ["true"])
    assert wait(cloud, cid, iid)["Status"] == "Success"
    assert time.monotonic() - sent_at >= 0.4  # a lower bound: a slow machine only adds to it


def test_status_goes_pending_in_progress_success(cloud: Cloud) -> None:
    cloud.ssm_invocation_delay = 0.0
    cloud.ssm_delivery_delay = 3600.0  # held Pending until released below
    iid = cloud.run_instance()
    ssm = cloud.client("ssm")
    gate = cloud.sandbox(iid) / "go"
    cid = send(cloud, iid, [f"while [ ! -e {gate} ]; do sleep 0.05; done"])

    def status() -> str:
        return str(ssm.get_command_invocation(CommandId=cid, InstanceId=iid)["Status"])

    assert status() == "Pending"
    cloud.ssm_delivery_delay = 0.0
    cloud.wait_for(lambda: status() == "InProgress", timeout=60)
    assert status() == "InProgress"  # the script is blocked on the gate
    gate.write_text("")
    cloud.wait_for(lambda: status() == "Success", timeout=60)
    command = ssm.list_commands(CommandId=cid)["Commands"][0]
    assert command["Status"] == "Success"
    assert (command["TargetCount"], command["CompletedCount"], command["ErrorCount"]) == (1, 1, 0)


def test_cancel_command(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    ssm = cloud.client("ssm")
    cid = send(cloud, iid, ["echo $$ > $HOME/shell.pid", "sleep 30"])
    pid_file = cloud.sandbox(iid) / "shell.pid"
    cloud.wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    ssm.cancel_command(CommandId=cid)
    inv = wait(cloud, cid, iid)
    assert inv["Status"] == "Cancelled"
    assert not _alive(int(pid_file.read_text()))
    assert ssm.list_commands(CommandId=cid)["Commands"][0]["Status"] == "Cancelled"
    with pytest.raises(ClientError) as err:
        ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert err.value.response["Error"]["Code"] == "InvalidCommandId"


def test_background_processes_survive_the_command_and_die_with_the_instance(
    cloud: Cloud,
) -> None:
    iid = cloud.run_instance()
    inv = cloud.run_command(
        iid,
        [
            "nohup sleep 60 > /dev/null 2>&1 & echo $! > $HOME/nohup.pid",
            "setsid sleep 60 > /dev/null 2>&1 < /dev/null & echo $! > $HOME/setsid.pid",
            "( ( sleep 60 & echo $! > $HOME/double.pid ) & )",
            "sleep 0.2",
        ],
    )
    assert inv["Status"] == "Success"
    pids = [
        int((cloud.sandbox(iid) / f"{n}.pid").read_text()) for n in ("nohup", "setsid", "double")
    ]
    time.sleep(0.3)
    assert all(_alive(pid) for pid in pids)
    assert set(pids) <= set(cloud.processes(iid))
    cloud.client("ec2").stop_instances(InstanceIds=[iid])
    assert not any(_alive(pid) for pid in pids)
    assert cloud.processes(iid) == []


def test_commands_to_stopped_terminated_or_unmanaged_instances_are_rejected(
    cloud: Cloud,
) -> None:
    ec2 = cloud.client("ec2")
    ssm = cloud.client("ssm")
    stopped = cloud.run_instance()
    ec2.stop_instances(InstanceIds=[stopped])
    terminated = cloud.run_instance()
    ec2.terminate_instances(InstanceIds=[terminated])
    unmanaged = cloud.run_instance(profile=None)
    cloud.create_instance_profile("no-ssm", ssm_policy=False)
    no_policy = cloud.run_instance(profile="no-ssm")
    for iid in (stopped, terminated, unmanaged, no_policy, "i-0123456789abcdef0"):
        with pytest.raises(ClientError) as err:
            send(cloud, iid, ["true"])
        assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
        assert f"Instances [[{iid}]] not in a valid state" in err.value.response["Error"]["Message"]
    ec2.start_instances(InstanceIds=[stopped])
    assert wait(cloud, send(cloud, stopped, ["true"]), stopped)["Status"] == "Success"
    with pytest.raises(ClientError) as err:
        ssm.send_command(
            InstanceIds=[stopped], DocumentName="AWS-RunPowerShellScript", Parameters={}
        )
    assert err.value.response["Error"]["Code"] == "InvalidDocument"


def test_describe_instance_information(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    ssm = cloud.client("ssm")
    online = cloud.run_instance(image="ubuntu2204")
    stopped = cloud.run_instance()
    ec2.stop_instances(InstanceIds=[stopped])
    unmanaged = cloud.run_instance(profile=None)
    gone = cloud.run_instance()
    ec2.terminate_instances(InstanceIds=[gone])
    everything = ssm.describe_instance_information()["InstanceInformationList"]
    by_id = {i["InstanceId"]: i for i in everything}
    assert set(by_id) == {online, stopped}
    assert by_id[online]["PingStatus"] == "Online"
    assert by_id[online]["PlatformName"] == "Ubuntu"
    assert by_id[online]["IamRole"] == "runctl-harness"
    assert by_id[stopped]["PingStatus"] == "ConnectionLost"
    assert unmanaged not in by_id
    old_style = ssm.describe_instance_information(
        InstanceInformationFilterList=[{"key": "InstanceIds", "valueSet": [online]}]
    )["InstanceInformationList"]
    assert [i["InstanceId"] for i in old_style] == [online]
    new_style = ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [stopped, unmanaged]}]
    )["InstanceInformationList"]
    assert [i["InstanceId"] for i in new_style] == [stopped]
    by_ping = ssm.describe_instance_information(
        Filters=[{"Key": "PingStatus", "Values": ["Online"]}]
    )["InstanceInformationList"]
    assert [i["InstanceId"] for i in by_ping] == [online]


def test_registration_delay(cloud: Cloud) -> None:
    cloud.ssm_registration_delay = 3600.0  # not registered until released below
    iid = cloud.run_instance()
    ssm = cloud.client("ssm")
    assert ssm.describe_instance_information()["InstanceInformationList"] == []
    with pytest.raises(ClientError):
        send(cloud, iid, ["true"])
    cloud.ssm_registration_delay = 0.0
    info = ssm.describe_instance_information()["InstanceInformationList"]
    assert [i["PingStatus"] for i in info] == ["Online"]


def test_list_commands_reflects_state(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    ssm = cloud.client("ssm")
    gate = cloud.sandbox(iid) / "go"
    slow = send(cloud, iid, [f"while [ ! -e {gate} ]; do sleep 0.05; done"])
    fast = send(cloud, iid, ["exit 2"])
    wait(cloud, fast, iid)
    cloud.wait_for(lambda: cloud.ssm.commands[slow].invocations[iid].status == "InProgress")
    listed = {c["CommandId"]: c for c in ssm.list_commands(InstanceId=iid)["Commands"]}
    assert listed[fast]["Status"] == "Failed"
    assert listed[slow]["Status"] == "InProgress"
    gate.write_text("")
    wait(cloud, slow, iid)
    assert ssm.list_commands(CommandId=slow)["Commands"][0]["Status"] == "Success"
    failed = ssm.list_commands(Filters=[{"key": "Status", "value": "Failed"}])["Commands"]
    assert [c["CommandId"] for c in failed] == [fast]
    with pytest.raises(ClientError) as err:
        ssm.list_commands(CommandId="00000000-0000-0000-0000-000000000000")
    assert err.value.response["Error"]["Code"] == "InvalidCommandId"


def test_working_directory_and_default_cwd(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    default = cloud.run_command(iid, "pwd")["StandardOutputContent"].strip()
    assert default.endswith("awsrunShellScript/0.awsrunShellScript")
    assert default.startswith(str(cloud.sandbox(iid)))
    (cloud.sandbox(iid) / "work").mkdir()
    inside = cloud.run_command(iid, "pwd", working_directory=str(cloud.sandbox(iid) / "work"))
    assert inside["StandardOutputContent"] == f"{cloud.sandbox(iid) / 'work'}\n"
    missing = cloud.run_command(iid, "pwd", working_directory="/nonexistent/dir")
    assert missing["Status"] == "Failed"


def test_sandbox_environment(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    inv = cloud.run_command(
        iid,
        [
            'echo "home=$HOME"',
            'echo "root=$RUNCTL_REMOTE_ROOT"',
            'echo "imds=$AWS_EC2_METADATA_SERVICE_ENDPOINT"',
            'echo "endpoint=$AWS_ENDPOINT_URL"',
            'echo "region=$AWS_DEFAULT_REGION"',
            'echo "key=${AWS_ACCESS_KEY_ID:-none}"',
        ],
    )
    lines = dict(line.split("=", 1) for line in inv["StandardOutputContent"].splitlines())
    assert lines == {
        "home": str(cloud.sandbox(iid)),
        "root": str(cloud.sandbox(iid)),
        "imds": cloud.imds_endpoint(iid),
        "endpoint": cloud.endpoint,
        "region": cloud.region,
        "key": "none",
    }


def test_bare_python_has_no_boto3(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    inv = cloud.run_command(
        iid,
        [
            "python3 -c 'import sys; print(sys.version_info[:2])'",
            "python -c 'import json, urllib.request, sqlite3'",
            "python3 -c 'import boto3'",
        ],
    )
    assert inv["Status"] == "Failed"
    assert "No module named 'boto3'" in inv["StandardErrorContent"]
    assert inv["StandardOutputContent"].startswith("(3, ")
    pip = cloud.run_command(iid, "python3 -m pip --version")
    assert pip["Status"] == "Failed"


def test_no_aws_cli_on_path(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    inv = cloud.run_command(iid, ["command -v aws || echo missing", "aws --version"])
    assert inv["StandardOutputContent"] == "missing\n"
    assert inv["ResponseCode"] == 127
    assert "aws: command not found" in inv["StandardErrorContent"]
    tools = cloud.run_command(iid, "command -v bash && command -v tar && command -v curl")
    assert tools["Status"] == "Success"


def test_instance_role_credentials_reach_moto(cloud: Cloud) -> None:
    """A stdlib-only script finds the role's keys in IMDS (as botocore would)."""
    iid = cloud.run_instance()
    script = (
        "import json, os, urllib.request as u\n"
        "base = os.environ['AWS_EC2_METADATA_SERVICE_ENDPOINT'].rstrip('/')\n"
        "tok = u.urlopen(u.Request(base + '/latest/api/token', method='PUT',"
        " headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'})).read().decode()\n"
        "h = {'X-aws-ec2-metadata-token': tok}\n"
        "get = lambda p: u.urlopen(u.Request(base + p, headers=h)).read().decode()\n"
        "role = get('/latest/meta-data/iam/security-credentials/').strip()\n"
        "print(json.loads(get('/latest/meta-data/iam/security-credentials/' + role))['Code'])\n"
    )
    inv = cloud.run_command(iid, [f"python3 - <<'PY'\n{script}PY"])
    assert inv["StandardOutputContent"] == "Success\n", inv["StandardErrorContent"]


def test_output_to_s3(cloud: Cloud) -> None:
    iid = cloud.run_instance()
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="logs")
    ssm = cloud.client("ssm")
    cid = ssm.send_command(
        InstanceIds=[iid],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["python3 -c \"print('x' * 30000)\""]},
        OutputS3BucketName="logs",
        OutputS3KeyPrefix="ssm",
    )["Command"]["CommandId"]
    inv = wait(cloud, cid, iid)
    key = f"ssm/{cid}/{iid}/awsrunShellScript/0.awsrunShellScript/stdout"
    assert inv["StandardOutputUrl"].endswith("/logs/" + key)
    body = s3.get_object(Bucket="logs", Key=key)["Body"].read()
    assert len(body) == 30001


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
