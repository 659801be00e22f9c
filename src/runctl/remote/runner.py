"""The instance-side job runner: ``python3 -m runctl.remote.runner start|run``.

``start --job s3://B/runctl/P/jobs/ID/ --attempt N [--force]`` is what the SSM start command
runs. It refuses (exit 8, a JSON error on stdout) when another job's runner is alive on this
machine (``<root>/current-job`` plus that job's ``runner.pid``) unless ``--force``, then starts
``run`` detached (its own session, stdin from /dev/null, output to ``jobs/<id>/runner.log``),
records its pid, prints one JSON line (``job_id``, ``attempt``, ``pid``, ``log``) and returns at
once, so the SSM command ends while the job goes on.

``run`` is the detached supervisor: it reads ``job.json`` from S3, learns its instance id and
region from IMDS, and runs :class:`runctl.remote.supervisor.Supervisor`. SIGUSR1 (sent by
``runctl.remote.control stop``) stops the job gracefully as ``stopped``; SIGTERM/SIGINT (a
shutdown) as ``interrupted``.

:func:`run_local` is the same supervisor in the foreground, for ``runctl local``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runctl.errors import ExitCode, RunctlError, UsageError, WrongStateError
from runctl.job.attempts import AttemptLog
from runctl.job.layout import JobPaths, RemoteRoot, read_pid, system_path
from runctl.job.record import JobRecord
from runctl.job.spec import (
    FAILED,
    JobLocation,
    JobStatus,
    utc_now,
    write_bytes_atomic,
)
from runctl.remote.succession import Succession, wait_for_previous
from runctl.remote.supervisor import (
    SHUTDOWN,
    STOP,
    RunContext,
    Supervisor,
    install_signal_handlers,
)

if TYPE_CHECKING:
    from runctl.remote.imds import ImdsClient


def run_local(ctx: RunContext) -> tuple[JobStatus, BaseException | None]:
    """Run one attempt in the foreground (``runctl local``); Ctrl-C or SIGTERM stop it
    gracefully (state ``stopped``), a second Ctrl-C kills the script at once.

    Returns the final status and the error that stopped the job before its script ran, if any.
    """
    JobRecord(paths=ctx.paths).write_spec(ctx.spec)
    supervisor = Supervisor(ctx)
    restore = install_signal_handlers(supervisor, {signal.SIGINT: STOP, signal.SIGTERM: STOP})
    try:
        return supervisor.run(), supervisor.error
    finally:
        restore()


def _root(args: argparse.Namespace) -> RemoteRoot:
    return RemoteRoot(Path(args.root)) if args.root else RemoteRoot.from_env()


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def start(args: argparse.Namespace) -> int:
    """Refuse if busy, else launch ``run`` detached; print one JSON line; the exit code."""
    root = _root(args)
    try:
        location = JobLocation.from_uri(args.job)
    except ValueError as exc:
        raise UsageError(str(exc), resource=args.job) from None
    running = root.running_job()
    if running == location.job_id or (running is not None and not args.force):
        raise WrongStateError(
            f"job {running} is already running on this instance",
            hint="wait for it to finish, stop it (`runctl aws stop`), or pass --force",
            resource=running,
        )
    paths = root.job(location.job_id)
    paths.job_dir.mkdir(parents=True, exist_ok=True)
    if paths.stop_request.exists():
        paths.stop_request.unlink()
    write_bytes_atomic(root.current_job_file, (location.job_id + "\n").encode())
    argv = [sys.executable, "-m", "runctl.remote.runner", "run", "--job", args.job]
    argv += ["--attempt", str(args.attempt), "--root", str(root.path)]
    if args.wait_until:
        argv += ["--wait-until", args.wait_until]
    if args.region:
        argv += ["--region", args.region]
    with paths.runner_log.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(paths.job_dir),
            start_new_session=True,
            close_fds=True,
        )
    write_bytes_atomic(paths.runner_pid, f"{process.pid}\n".encode())
    _print(
        {
            "job_id": location.job_id,
            "attempt": args.attempt,
            "pid": process.pid,
            "root": str(root.path),
            "log": str(paths.log(args.attempt)),
            "started": True,
        }
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """The detached supervisor of one attempt on an instance."""
    from runctl.aws.session import AwsContext, client_config
    from runctl.remote.imds import ImdsClient, probe

    root = _root(args)
    location = JobLocation.from_uri(args.job)
    paths = root.job(location.job_id)
    write_bytes_atomic(paths.runner_pid, f"{os.getpid()}\n".encode())
    s3: Any = None
    try:
        imds: ImdsClient | None = ImdsClient()
        instance_id = probe(imds) if imds is not None else None
        if instance_id is None:
            imds = None
        region = (
            os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or args.region
            or (imds.region() if imds is not None else None)
            or "us-east-1"
        )
        aws = AwsContext(config_region=region, on_instance=True)
        s3 = aws.s3()
        spec = JobRecord(location, s3=s3).read_spec()
        JobRecord(paths=paths).write_spec(spec)  # the instance's copy
        if args.wait_until and not _previous_ended(s3, aws, location, args, instance_id):
            return 0
        attempts = AttemptLog(location, s3)
        zone = _imds_meta(imds, "placement/availability-zone")
        _note_attempt(attempts, args.attempt, instance_id=instance_id, started=utc_now(),
                      availability_zone=zone,
                      market=_imds_meta(imds, "instance-life-cycle"))  # fmt: skip
        ctx = RunContext(
            spec=spec,
            attempt=args.attempt,
            paths=paths,
            checkpoint_dir=paths.checkpoint_dir(spec.checkpoint.dir),
            workdir=Path(spec.workdir) if spec.workdir else paths.code_dir,
            instance_id=instance_id or "unknown",
            on_instance=True,
            python=sys.executable,
            s3_client=lambda: s3,
            ec2_client=aws.ec2,
            imds=imds,
            venvs_dir=root.venvs_dir,
            on_end=lambda status: _note_end(attempts, status),
            data_dir=system_path(spec.data_dir) if spec.data_dir else None,
            docker_config=root.path / "docker",
            ecr_client=lambda ecr_region: aws.session.client(
                "ecr", region_name=ecr_region, config=client_config()
            ),
        )
        supervisor = Supervisor(ctx)
        if spec.recovery and imds is not None and instance_id:
            successor = Succession(spec, args.attempt, instance_id, s3=s3, ec2=aws.ec2,
                                   zone=zone, say=supervisor.say)  # fmt: skip
            ctx.on_notice = lambda notice: successor.on_notice(notice.time)
            threading.Thread(target=successor.prepare, name="runctl-ec2", daemon=True).start()
        restore = install_signal_handlers(
            supervisor,
            {signal.SIGUSR1: STOP, signal.SIGTERM: SHUTDOWN, signal.SIGINT: SHUTDOWN},
        )
        try:
            status = supervisor.run()
        finally:
            restore()
        sys.stdout.write(status.to_json())
        return 0
    except Exception as exc:
        _record_early_failure(s3, location, args.attempt, paths, exc)
        raise
    finally:
        if root.current_job() == location.job_id:
            _unlink(root.current_job_file)
        if read_pid(paths.runner_pid) == os.getpid():
            _unlink(paths.runner_pid)
        _unlink(paths.stop_request)


def _previous_ended(
    s3: Any, aws: Any, location: JobLocation, args: argparse.Namespace, instance_id: str | None
) -> bool:
    """A successor's runner: wait for the previous attempt's end; True when this attempt should
    run. When it should not (the job ended otherwise meanwhile), say so in the attempt log and
    terminate this instance, which was launched for nothing else."""
    go, why = wait_for_previous(JobRecord(location, s3=s3), args.attempt, args.wait_until)
    if go:
        return True
    _note_attempt(AttemptLog(location, s3), args.attempt, instance_id=instance_id,
                  ended=utc_now(), state="refused", reason=f"not started: {why}")  # fmt: skip
    if instance_id:
        with contextlib.suppress(Exception):
            aws.ec2().terminate_instances(InstanceIds=[instance_id])
    return False


def _imds_meta(imds: ImdsClient | None, name: str) -> str | None:
    """An IMDS meta-data value for the attempt log, or None: IMDS being slow must never stop
    the job (only the spot watcher depends on it)."""
    if imds is None:
        return None
    try:
        return imds.meta(name)
    except Exception:
        return None


def _note_end(attempts: AttemptLog, status: JobStatus) -> None:
    """The attempt's end in the attempt log: written before a finish action ends the instance."""
    _note_attempt(
        attempts, status.attempt, ended=status.ended, state=status.state,
        reason=status.message or status.reason, checkpoint_id=status.checkpoint_id,
        restored_checkpoint=status.restored_checkpoint,
    )  # fmt: skip


def _note_attempt(attempts: AttemptLog, attempt: int, **changes: Any) -> None:
    """Update the attempt log (best effort: it is the history, not the job)."""
    with contextlib.suppress(Exception):
        attempts.update(attempt, **changes)


def _record_early_failure(
    s3: Any, location: JobLocation, attempt: int, paths: JobPaths, exc: BaseException
) -> None:
    """The job could not even be read or set up: say so in status.json (best effort)."""
    status = JobStatus(
        job_id=location.job_id,
        state=FAILED,
        attempt=attempt,
        ended=utc_now(),
        updated=utc_now(),
        message=f"the runner could not start the job: {type(exc).__name__}: {exc}",
    )
    with contextlib.suppress(Exception):
        JobRecord(paths=paths).write_status(status)
    if s3 is not None:
        with contextlib.suppress(Exception):
            JobRecord(location, s3=s3).write_status(status)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m runctl.remote.runner")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "run"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--job", required=True, help="s3://BUCKET/runctl/PROJECT/jobs/ID/")
        cmd.add_argument("--attempt", type=int, default=0)
        cmd.add_argument("--root", default=None, help="default: $RUNCTL_REMOTE_ROOT or /opt/runctl")
        cmd.add_argument("--region", default=None)
        cmd.add_argument(
            "--wait-until",
            default=None,
            help="a successor: wait for the previous attempt's end until this ISO time",
        )
        if name == "start":
            cmd.add_argument("--force", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return start(args) if args.command == "start" else run(args)
    except RunctlError as err:
        _print(err.to_dict())
        return int(err.exit_code)
    except Exception as exc:  # the last word of a detached process: say what happened
        _print({"error": type(exc).__name__, "message": str(exc), "exit_code": 1})
        return int(ExitCode.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
