"""The job's script in a container (``aws train --docker``), on the instance, with the docker CLI.

Before the first run, :meth:`JobContainer.prepare`: ``docker`` must be on ``PATH``; for an image
in ECR the runner logs in with the instance role (``GetAuthorizationToken`` through boto3; the
password goes to ``docker login --password-stdin``, never onto a command line) into a Docker
config of its own (``<root>/docker``, so neither ``HOME`` nor root's config matter); containers
an earlier runner of this job left behind are removed; the image is pulled, its output in the job
log, and a stop request ends the pull.

Each run, :meth:`JobContainer.start` runs ``docker run --rm --init`` in the foreground (its
output is the script's, in the job log; its exit code the script's) with:

- the job's directories -- code, data, checkpoints, outputs -- bind-mounted at their real paths
  on this host, and the environment contract's paths given as those same paths, so the script
  sees the values a script outside a container would, and ``/proc`` here names the files the
  container's processes hold open exactly as it names a plain script's
  (:mod:`runctl.remote.writers` works unchanged);
- the contract's variables and the job's ``--env`` passed as ``--env NAME`` (values travel in the
  docker CLI's environment, not on its command line), plus the AWS SDK's region and endpoint
  settings (never credentials), so with the host network the SDK inside finds the same region,
  endpoints and instance-role credentials (IMDS) as the runner;
- ``--gpus all`` when the instance has NVIDIA GPUs (``nvidia-smi``), ``--shm-size`` half the
  memory (PyTorch's DataLoader workers pass batches through ``/dev/shm``; Docker's default
  64 MB makes them crash), the image's ENTRYPOINT replaced by the script's command, and labels
  ``runctl.job``, ``runctl.attempt`` and ``runctl.instance``.

Stopping is the supervisor's graceful stop, unchanged: :class:`ContainerProcess` sends its signals
from this host to the container's processes (the session of the container's init, ``docker-init``,
which holds everything the script started): SIGTERM to all but the init, SIGSTOP, SIGCONT and
SIGKILL to all (killing the init ends the container). Its ``pid`` is that init's, so the writer
watch reads the container's processes. Standard library and boto3 only, Python 3.9.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runctl.job.images import ImageRef
from runctl.remote.process import JobLog, Observer, ScriptProcess, run_logged
from runctl.remote.staging import StagingError
from runctl.remote.writers import job_processes

if TYPE_CHECKING:
    from runctl.remote.supervisor import RunContext

LABEL_JOB = "runctl.job"
LABEL_ATTEMPT = "runctl.attempt"
LABEL_INSTANCE = "runctl.instance"
#: Variables of the runner's environment the container gets too: the AWS SDK's region and
#: endpoints (an instance has no credentials in its environment; the role comes from IMDS).
AWS_SETTINGS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS")
AWS_SETTING_PREFIXES = ("AWS_ENDPOINT_URL", "AWS_EC2_METADATA_SERVICE_ENDPOINT")
#: Contract variables holding this host's paths (given as real paths, as they are mounted).
PATH_VARIABLES = ("RUNCTL_DATA_DIR", "RUNCTL_CHECKPOINT_DIR", "RUNCTL_OUTPUT_DIR")
WHOLE_CONTAINER_SIGNALS = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT})
START_TIMEOUT = 120.0
INSPECT_INTERVAL = 0.05
DEFAULT_SHM_BYTES = 2 * 1024**3


def shm_size_bytes(meminfo: str = "/proc/meminfo") -> int:
    """Half of the machine's memory (the kernel's default for ``/dev/shm``), in bytes."""
    try:
        with open(meminfo, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return DEFAULT_SHM_BYTES


def has_nvidia_gpus() -> bool:
    """True when the instance has NVIDIA GPUs and their driver (``nvidia-smi`` is installed)."""
    return shutil.which("nvidia-smi") is not None


def mount_points(directories: Sequence[Path]) -> list[str]:
    """The real paths of ``directories``, without any that another one already contains."""
    reals = sorted({os.path.realpath(d) for d in directories})
    kept: list[str] = []
    for real in reals:
        if not any(real == k or real.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(real)
    return kept


def bind_mount(path: str) -> str:
    """``--mount`` value binding ``path`` at the same path (CSV-quoted, as docker reads it)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        ["type=bind", f"source={path}", f"target={path}"]
    )
    return buffer.getvalue()


def container_environment(contract: dict[str, str], runner_env: dict[str, str]) -> dict[str, str]:
    """What the script sees in the container: the contract (paths made real) and the AWS SDK
    settings of the runner's environment."""
    env = {
        name: value
        for name, value in runner_env.items()
        if name in AWS_SETTINGS or name.startswith(AWS_SETTING_PREFIXES)
    }
    env.update(contract)
    for name in PATH_VARIABLES:
        if name in env:
            env[name] = os.path.realpath(env[name])
    return env


def run_argv(
    image: str,
    command: Sequence[str],
    *,
    name: str,
    workdir: str,
    mounts: Sequence[str],
    env_names: Sequence[str],
    labels: dict[str, str],
    gpus: bool,
    shm_bytes: int,
) -> list[str]:
    """The ``docker run`` command line (no values of the environment on it)."""
    argv = ["docker", "run", "--rm", "--init", "--name", name, "--network", "host"]
    argv += ["--shm-size", f"{max(shm_bytes // (1024 * 1024), 64)}m"]
    if gpus:
        argv += ["--gpus", "all"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    for path in mounts:
        argv += ["--mount", bind_mount(path)]
    argv += ["--workdir", workdir]
    for env_name in sorted(env_names):
        argv += ["--env", env_name]
    return [*argv, "--entrypoint", command[0], image, *command[1:]]


class ContainerProcess(ScriptProcess):
    """``docker run`` in the foreground, signalled through the container's processes."""

    def __init__(
        self, argv: Sequence[str], *, name: str, cwd: Path, env: dict[str, str], log: JobLog
    ) -> None:
        self.name = name
        self.docker_env = env
        self._init: tuple[int, str] | None = None  # (pid, start time): never a reused pid
        super().__init__(argv, cwd=cwd, env=env, log=log)

    @property
    def pid(self) -> int:
        """The container's init on this host, once the container runs (waits for it); the
        docker CLI's pid when the container never started."""
        init = self.init_pid(wait=START_TIMEOUT)
        return init if init is not None else self.proc.pid

    def init_pid(self, wait: float = 0.0) -> int | None:
        """The host pid of the container's init while it lives, waiting up to ``wait`` seconds
        for the container to start; None once it is gone or when it never started."""
        if self._init is not None:
            known, since = self._init
            return known if _start_time(known) == since else None
        deadline = time.monotonic() + wait
        while True:
            pid = self._inspect_pid()
            started = _start_time(pid)
            if pid is not None and started is not None:
                self._init = (pid, started)
                return pid
            if self.poll() is not None or time.monotonic() >= deadline:
                return None
            time.sleep(INSPECT_INTERVAL)

    def _inspect_pid(self) -> int | None:
        done = self._docker("inspect", "--format", "{{.State.Pid}}", self.name)
        text = done.stdout.strip() if done.returncode == 0 else ""
        return int(text) if text.isdigit() and int(text) > 0 else None

    def _docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            env=self.docker_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def signal_group(self, signum: int) -> bool:
        """Send ``signum`` to the container's processes (see the module); False when none is
        left. Before the container runs, the docker CLI's group gets it (the CLI forwards it)."""
        init = self.init_pid()
        if init is None:
            return False if self._init is not None else super().signal_group(signum)
        sent = False
        for pid in sorted(job_processes(init)):
            if pid == init and signum not in WHOLE_CONTAINER_SIGNALS:
                continue  # docker-init forwards SIGTERM to the script: it would get two
            try:
                os.kill(pid, signum)
                sent = True
            except ProcessLookupError:
                continue
            except PermissionError:  # not root: ask the daemon (the init forwards it)
                return self._docker("kill", f"--signal={int(signum)}", self.name).returncode == 0
        return sent

    def terminate(
        self,
        grace: float,
        on_sigterm: Callable[[], None] | None = None,
        observer: Observer | None = None,
    ) -> int:
        try:
            return super().terminate(grace, on_sigterm=on_sigterm, observer=observer)
        finally:
            self.remove()

    def remove(self) -> None:
        """Remove the container whatever its state (``--rm`` does it when it ends by itself)."""
        self._docker("rm", "--force", self.name)


def _start_time(pid: int | None) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks), or None when it is gone."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


class JobContainer:
    """The container side of one attempt: pull once, then run the script in a container."""

    def __init__(self, ctx: RunContext, log: JobLog, say: Callable[[str], None]) -> None:
        assert ctx.spec.docker_image, "a container job needs an image"
        self.ctx = ctx
        self.image = ctx.spec.docker_image
        self.log = log
        self.say = say

    def docker_env(self) -> dict[str, str]:
        """The docker CLI's environment: the runner's, with runctl's own Docker config."""
        env = dict(os.environ)
        if self.ctx.docker_config is not None:
            self.ctx.docker_config.mkdir(mode=0o700, parents=True, exist_ok=True)
            env["DOCKER_CONFIG"] = str(self.ctx.docker_config)
        return env

    def prepare(self, should_stop: Callable[[], bool]) -> None:
        """Log in (ECR), remove this job's leftover containers, pull the image; StagingError
        saying what failed."""
        if shutil.which("docker") is None:
            raise StagingError(
                "this job runs in a container (--docker) but the instance has no docker CLI: "
                "use an AMI with Docker (the Deep Learning AMIs have it and the NVIDIA "
                "container toolkit) or install it in the instance's user data"
            )
        env = self.docker_env()
        if self.ctx.spec.docker_ecr_region:
            self._login(self.ctx.spec.docker_ecr_region, env)
        self._remove_leftovers(env)
        self.say(f"pulling {self.image}")
        code = run_logged(
            ["docker", "pull", self.image], log=self.log, env=env, should_stop=should_stop
        )
        if code != 0 and not should_stop():
            raise StagingError(f"docker pull {self.image} failed (exit {code}); see the job log")

    def _login(self, region: str, env: dict[str, str]) -> None:
        from runctl.aws.ecr import Ecr
        from runctl.errors import RunctlError

        if self.ctx.ecr_client is None:
            raise StagingError("this job's image is in ECR but no ECR client is configured")
        try:
            login = Ecr(self.ctx.ecr_client(region)).get_authorization_token()
        except RunctlError as err:
            raise StagingError(
                f"logging in to ECR in {region} with the instance role failed: {err.message}. "
                "Run `runctl aws setup` to let runctl's instances pull from ECR"
            ) from None
        registry = ImageRef.parse(self.image).registry or login.registry
        done = subprocess.run(
            ["docker", "login", "--username", login.username, "--password-stdin", registry],
            input=login.password,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise StagingError(f"docker login {registry} failed: {done.stderr.strip()[-500:]}")
        self.say(f"logged in to {registry} with the instance role")

    def _remove_leftovers(self, env: dict[str, str]) -> None:
        """Containers of this job that an earlier runner here left (it died, the machine
        rebooted): two would write the same checkpoints."""
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={LABEL_JOB}={self.ctx.spec.job_id}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found = listed.stdout.split()
        if found:
            self.say(f"removing {len(found)} container(s) an earlier run of this job left")
            subprocess.run(
                ["docker", "rm", "--force", *found],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )

    def start(self, command: Sequence[str], contract: dict[str, str]) -> ContainerProcess:
        """Run ``command`` (the script's, with this host's paths) in a new container."""
        ctx = self.ctx
        workdir = os.path.realpath(ctx.workdir)
        directories = [ctx.workdir, ctx.data_path, ctx.checkpoint_dir, ctx.paths.output_dir]
        container_env = container_environment(contract, dict(os.environ))
        name = f"runctl-{ctx.spec.job_id}-{ctx.attempt}-{secrets.token_hex(3)}"
        argv = run_argv(
            self.image,
            [_real_path(item, str(ctx.workdir), workdir) for item in command],
            name=name,
            workdir=workdir,
            mounts=mount_points(directories),
            env_names=list(container_env),
            labels={
                LABEL_JOB: ctx.spec.job_id,
                LABEL_ATTEMPT: str(ctx.attempt),
                LABEL_INSTANCE: ctx.instance_id,
            },
            gpus=has_nvidia_gpus(),
            shm_bytes=shm_size_bytes(),
        )
        self.log.note("$ " + " ".join(argv))
        env = {**self.docker_env(), **container_env}
        return ContainerProcess(argv, name=name, cwd=ctx.workdir, env=env, log=self.log)


def _real_path(item: str, workdir: str, real: str) -> str:
    """``item`` with the code directory's path replaced by its real path."""
    if item == workdir or item.startswith(workdir.rstrip("/") + "/"):
        return real + item[len(workdir.rstrip("/")) :]
    return item
