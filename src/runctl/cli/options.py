"""The options several commands share, declared once: what ``aws create`` says about the
instances it launches and what ``aws train`` says about the job it starts, both of which
``workflow train`` takes too."""

from __future__ import annotations

from typing import Annotated

import typer

# -- the job (``aws train``, ``workflow train``) ---------------------------------------------------

Script = Annotated[str, typer.Argument(help="Training script, relative to here.")]
ScriptArgs = Annotated[list[str] | None, typer.Argument(help="Arguments for the script, after --.")]
SyncCode = Annotated[
    bool, typer.Option("--sync-code/--no-sync-code", help="Ship the project's code.")
]
IncludePattern = Annotated[
    list[str] | None,
    typer.Option("--include-pattern", help="Ship files matching this even if ignored."),
]
DataS3 = Annotated[str | None, typer.Option("--data-s3", help="Stage this S3 prefix.")]
DataVolume = Annotated[
    str | None,
    typer.Option("--data-volume", help="Mount this EBS volume; RUNCTL_DATA_DIR points there."),
]
OutputS3 = Annotated[str | None, typer.Option("--output-s3", help="Upload RUNCTL_OUTPUT_DIR here.")]
CheckpointS3 = Annotated[
    str | None, typer.Option("--checkpoint-s3", help="Commit checkpoints here.")
]
EnvPairs = Annotated[
    list[str] | None, typer.Option("--env", help="K=V for the script (repeatable).")
]
ProjectName = Annotated[str | None, typer.Option("--project-name", help="Project (key, tags).")]
MaxRestarts = Annotated[
    int, typer.Option("--max-restarts", help="Replacements --auto-resume may launch.", min=0)
]
Docker = Annotated[
    bool, typer.Option("--docker", help="Run in a container built from the Dockerfile (ECR).")
]
DockerImage = Annotated[
    str | None, typer.Option("--docker-image", help="Run in this image (implies --docker).")
]

# -- the instances (``aws create``, ``workflow train``) --------------------------------------------

Spot = Annotated[
    bool | None,
    typer.Option("--spot/--on-demand", help="Spot (falls back to on-demand) or on-demand."),
]
SpotMaxPrice = Annotated[
    float | None, typer.Option("--spot-max-price", help="Highest spot price, USD/hour.")
]
NoFallback = Annotated[
    bool, typer.Option("--no-fallback", help="Never fall back from spot to on-demand.")
]
AmiId = Annotated[str | None, typer.Option("--ami-id", help="AMI to boot.")]
IamInstanceProfile = Annotated[
    str | None, typer.Option("--iam-instance-profile", help="Instance profile name or ARN.")
]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Extra tag K=V (repeatable).")]

#: Skip the confirmation prompt of a command that deletes, stops or terminates.
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
