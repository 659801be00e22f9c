"""``runctl workflow train``: create N instances, run one job on each, fetch the outputs and
terminate -- also on failure, Ctrl-C and a lost terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runctl.cli.aws_clients import job_session
from runctl.cli.job_output import LogPrinter, PrefixedLogs
from runctl.cli.options import (
    AmiId,
    CheckpointS3,
    DataS3,
    EnvPairs,
    IamInstanceProfile,
    IncludePattern,
    MaxRestarts,
    NoFallback,
    OutputS3,
    ProjectName,
    Script,
    ScriptArgs,
    Spot,
    SpotMaxPrice,
    SyncCode,
    Tags,
)
from runctl.cli.output import Output
from runctl.cli.registry import group_help
from runctl.cli.state import OutputOption, command_output, get_state
from runctl.cli.units import duration, money

if TYPE_CHECKING:
    from runctl.config import Settings
    from runctl.services.instances.launch_request import LaunchRequest
    from runctl.services.workflow.results import WorkflowResult

workflow_app = typer.Typer(help=group_help("workflow"), rich_markup_mode=None, no_args_is_help=True)


@workflow_app.command("train")
def train(
    ctx: typer.Context,
    script: Script,
    instance_type: Annotated[
        str, typer.Option("--instance-type", "-t", help="EC2 instance type, e.g. g5.xlarge.")
    ],
    args: ScriptArgs = None,
    spot: Spot = None,
    count: Annotated[
        int | None, typer.Option("--count", "-n", help="Instances, one job each.", min=1)
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="KEY=V1,V2,...: one job per value (--KEY=V); repeat: a grid."),
    ] = None,
    spot_max_price: SpotMaxPrice = None,
    no_fallback: NoFallback = False,
    ami_id: AmiId = None,
    iam_instance_profile: IamInstanceProfile = None,
    tag: Tags = None,
    sync_code: SyncCode = True,
    include_pattern: IncludePattern = None,
    data_s3: DataS3 = None,
    output_s3: OutputS3 = None,
    checkpoint_s3: CheckpointS3 = None,
    env: EnvPairs = None,
    project_name: ProjectName = None,
    auto_resume: Annotated[
        bool, typer.Option("--auto-resume", help="Resume each interrupted job on a replacement.")
    ] = False,
    max_restarts: MaxRestarts = 3,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Minutes each job may run.", min=0)
    ] = None,
    download_dir: Annotated[
        Path, typer.Option("--download-dir", help="Outputs go to DIR/JOB_ID/.")
    ] = Path("runctl-outputs"),
    no_download: Annotated[
        bool, typer.Option("--no-download", help="Leave the outputs in S3.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Start the jobs and return: each instance terminates itself when its job ends; "
            "with --auto-resume the jobs recover on their own.",
        ),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Create instances, run one job on each (interleaved logs), download their outputs and
    terminate them -- on success, failure, Ctrl-C and SIGHUP. Exits 0 only if every job
    succeeded. With several jobs, --output-s3 and --checkpoint-s3 get one JOB_ID/ each."""
    from runctl.services.jobs.local import parse_env_pairs
    from runctl.services.jobs.request import TrainRequest
    from runctl.services.workflow.plan import WorkflowRequest, parse_sweep
    from runctl.services.workflow.train import run_workflow

    out = command_output(ctx, output)
    settings = get_state(ctx).config(overrides={
        "aws.use_spot": spot, "aws.default_ami": ami_id, "aws.project_name": project_name,
        "aws.iam_instance_profile": iam_instance_profile,
    }).settings  # fmt: skip
    launch = _launch_request(
        settings, instance_type, ami_id is not None, spot_max_price, no_fallback, tag or []
    )
    request = WorkflowRequest(
        launch=launch,
        train=TrainRequest(
            instance_id="", script=script, args=list(args or []), sync_code=sync_code,
            include_patterns=list(include_pattern or []), data_s3=data_s3, output_s3=output_s3,
            checkpoint_s3=checkpoint_s3, env=parse_env_pairs(list(env or [])),
            project_name=project_name, max_restarts=max_restarts,
            recover_on_instance=auto_resume and detach,
        ),
        count=count, sweeps=[parse_sweep(s) for s in sweep or []],
        download_dir=None if no_download else download_dir, auto_resume=auto_resume,
        max_restarts=max_restarts, timeout_minutes=timeout, detach=detach,
    )  # fmt: skip
    logs = PrefixedLogs(out)
    result = run_workflow(
        job_session(ctx, out, settings),
        request,
        log_for=lambda job: (
            logs.sink(f"[{job.plan.label}] ") if job.plan.total > 1 else LogPrinter(out)
        ),
    )
    logs.close()
    _render(out, result)


def _launch_request(
    settings: Settings,
    instance_type: str,
    ami_from_flag: bool,
    spot_max_price: float | None,
    no_fallback: bool,
    tag: list[str],
) -> LaunchRequest:
    """The instances' spec: the flags over the ``[aws]`` settings (as ``aws create``)."""
    from runctl.paths import Project
    from runctl.services.instances.launch_request import request_from_settings
    from runctl.services.tags import parse_tag_options

    return request_from_settings(
        settings.aws,
        instance_type,
        project=Project.find(Path.cwd(), settings.aws.project_name).key,
        ami_from_flag=ami_from_flag,
        spot_max_price=spot_max_price,
        fallback=not no_fallback,
        tags=parse_tag_options(tag),
    )


def _render(out: Output, result: WorkflowResult) -> None:
    """The summary table, then exit 0 when every job succeeded (else the first failure's code,
    with the whole result as the JSON document)."""
    if out.is_text:
        _print_summary(out, result)
    failure = result.failure()
    if failure is not None:
        raise failure
    detached = any(job.detached for job in result.jobs)
    said = (
        f"{len(result.jobs)} job(s) started; each instance terminates itself when its job ends "
        "(follow them with `runctl jobs list`)"
        if detached
        else f"{len(result.jobs)} job(s) succeeded; every instance terminated"
    )
    out.document(result.to_dict(), lambda o: o.success(said))


def _print_summary(out: Output, result: WorkflowResult) -> None:
    out.table(
        ["job", "id", "instance", "verdict", "exit", "duration", "cost", "outputs"],
        [
            [
                job.plan.label,
                job.plan.job_id,
                (job.outcome.instance_id if job.outcome else job.instance_id) or "-",
                job.verdict
                or (f"error: {job.error.message}" if job.error else None)
                or ("running" if job.detached else "-"),
                job.outcome.exit_code if job.outcome else None,
                duration(job.cost.instance_seconds if job.cost else None),
                money(job.cost.usd if job.cost else None),
                _shown(job.outputs_dir, job.output_files),
            ]
            for job in result.jobs
        ],
        title=f"workflow {result.workflow_id}",
    )
    if result.left_running:
        out.warn(
            f"still running: {', '.join(result.left_running)}; terminate them with "
            "`runctl aws terminate ID --yes`"
        )
    elif not any(job.detached for job in result.jobs):
        out.info(f"no instance of workflow {result.workflow_id} is left running")


def _shown(outputs: Path | None, files: int) -> str:
    """Where a job's outputs went, relative to here when they are below it."""
    if outputs is None:
        return "-"
    where = outputs.relative_to(Path.cwd()) if outputs.is_relative_to(Path.cwd()) else outputs
    return f"{where}/ ({files} files)"
