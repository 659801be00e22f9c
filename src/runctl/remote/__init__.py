"""What runs on the instance: the job runner, the IMDS watcher, checkpoint sync and control.

Everything in this package runs on a bare ``python3`` >= 3.9 with only the standard library and
what the runtime bundle ships (boto3, botocore, s3transfer and their dependencies, plus
``runctl.errors`` and ``runctl.aws``'s session, error and S3 modules): no typer, rich, pydantic or
``runctl.config``, and no syntax or runtime feature newer than Python 3.9. The laptop imports the
same modules for ``runctl local`` and for reading job and checkpoint state.
"""
