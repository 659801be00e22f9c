"""Tests of instance lifecycle in the harness: disks, power, user data, shutdown."""

from __future__ import annotations

import gzip

from tests.cloud.harness import Cloud
from tests.cloud.test_ssm import _alive


def test_stopped_instance_keeps_its_disk_terminated_loses_it(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    iid = cloud.run_instance()
    assert cloud.run_command(iid, "echo data > $HOME/state.txt")["Status"] == "Success"
    ec2.stop_instances(InstanceIds=[iid])
    assert cloud.state(iid) == "stopped"
    assert (cloud.sandbox(iid) / "state.txt").read_text() == "data\n"
    ec2.start_instances(InstanceIds=[iid])
    assert cloud.run_command(iid, "cat $HOME/state.txt")["StandardOutputContent"] == "data\n"
    ec2.terminate_instances(InstanceIds=[iid])
    assert cloud.state(iid) == "terminated"
    assert not cloud.sandbox(iid).exists()


def test_stop_and_terminate_kill_everything(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    iid = cloud.run_instance()
    cloud.run_command(iid, "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $! > $HOME/pid")
    pid = int((cloud.sandbox(iid) / "pid").read_text())
    assert _alive(pid)
    ec2.stop_instances(InstanceIds=[iid])
    assert not _alive(pid)
    ec2.start_instances(InstanceIds=[iid])
    cloud.run_command(iid, "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $! > $HOME/pid")
    pid = int((cloud.sandbox(iid) / "pid").read_text())
    ec2.terminate_instances(InstanceIds=[iid])
    assert not _alive(pid)
    assert cloud.processes(iid) == []


def test_command_running_when_the_instance_stops_fails(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    ssm = cloud.client("ssm")
    iid = cloud.run_instance()
    cid = ssm.send_command(
        InstanceIds=[iid],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo started", "sleep 30"]},
    )["Command"]["CommandId"]
    cloud.wait_for(lambda: cloud.ssm.commands[cid].invocations[iid].status == "InProgress")
    ec2.stop_instances(InstanceIds=[iid])
    cloud.ssm_invocation_delay = 0.0  # visible now, however long the steps above took
    inv = ssm.get_command_invocation(CommandId=cid, InstanceId=iid)
    assert (inv["Status"], inv["ResponseCode"]) == ("Failed", 137)


def test_user_data_runs_once_at_first_boot(cloud: Cloud) -> None:
    ec2 = cloud.client("ec2")
    script = "#!/bin/bash\necho booting $RUNCTL_HARNESS_INSTANCE\necho run >> $HOME/boots\n"
    iid = cloud.run_instance(user_data=script)
    log = cloud.wait_boot(iid)
    assert f"booting {iid}" in log.read_text()
    assert (cloud.sandbox(iid) / "boots").read_text() == "run\n"
    assert (cloud.sandbox(iid) / "var/lib/cloud/instance/user-data.txt").read_text() == script
    runtime = cloud.runtimes[iid]
    first_boot = runtime.boot_thread
    ec2.stop_instances(InstanceIds=[iid])
    ec2.start_instances(InstanceIds=[iid])
    cloud.wait_for(lambda: runtime.boot_id == 2 and runtime.powered)
    # The second boot is complete and started no user-data run (nothing to wait out).
    assert runtime.boot_thread is first_boot
    assert (cloud.sandbox(iid) / "boots").read_text() == "run\n"


def test_user_data_through_the_api_runs_in_the_background(cloud: Cloud) -> None:
    profile = cloud.create_instance_profile()
    ec2 = cloud.client("ec2")
    # Blocked until the test opens the gate (or 60 s): a run in the foreground would hold
    # RunInstances that long and then write "ungated".
    script = (
        "#!/bin/bash\n"
        "for _ in $(seq 600); do [ -e $HOME/go ] && break; sleep 0.1; done\n"
        "if [ -e $HOME/go ]; then echo gated > $HOME/done; else echo ungated > $HOME/done; fi\n"
    )
    iid = ec2.run_instances(
        ImageId=cloud.amis["ubuntu2204"],
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        UserData=script,
        IamInstanceProfile={"Arn": profile.arn},
    )["Instances"][0]["InstanceId"]
    assert not (cloud.sandbox(iid) / "done").exists()
    (cloud.sandbox(iid) / "go").write_text("")
    cloud.wait_boot(iid, timeout=120)
    assert (cloud.sandbox(iid) / "done").read_text() == "gated\n"


def test_gzipped_user_data_and_failures_are_logged(cloud: Cloud) -> None:
    packed = gzip.compress(b"#!/bin/sh\necho packed\nexit 3\n")
    iid = cloud.run_instance(user_data=packed)
    log = cloud.wait_boot(iid).read_text()
    assert "packed" in log
    assert "Failed to run module scripts-user" in log


def test_shutdown_inside_the_instance(cloud: Cloud) -> None:
    stopper = cloud.run_instance()
    cloud.run_command(stopper, "shutdown -h now")
    cloud.wait_state(stopper, "stopped")
    assert cloud.sandbox(stopper).exists()

    terminator = cloud.run_instance(InstanceInitiatedShutdownBehavior="terminate")
    cloud.run_command(terminator, "sudo_missing=1; poweroff")
    cloud.wait_state(terminator, "terminated")
    cloud.wait_for(lambda: not cloud.sandbox(terminator).exists())


def test_reboot_kills_processes_but_keeps_disk(cloud: Cloud) -> None:
    iid = cloud.run_instance(user_data="#!/bin/sh\necho x >> $HOME/boots\n")
    cloud.wait_boot(iid)
    cloud.run_command(iid, "setsid sleep 60 >/dev/null 2>&1 < /dev/null & echo $! > $HOME/pid")
    pid = int((cloud.sandbox(iid) / "pid").read_text())
    cloud.client("ec2").reboot_instances(InstanceIds=[iid])
    assert not _alive(pid)
    assert cloud.state(iid) == "running"
    assert (cloud.sandbox(iid) / "boots").read_text() == "x\n"
    assert cloud.run_command(iid, "true")["Status"] == "Success"


def test_reset_between_tests_left_nothing(cloud: Cloud) -> None:
    assert cloud.runtimes == {}
    assert cloud.request_log == []
    assert cloud.client("ec2").describe_instances()["Reservations"] == []
    assert not (cloud.root / "instances").exists() or not any((cloud.root / "instances").iterdir())
