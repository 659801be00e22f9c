"""The job contract both sides share: job.json and status.json, where a job lives on disk and
in S3, the checkpoint manifest and its stores.

Everything here is Python 3.9-safe and imports only the standard library and (for S3) boto3: the
runtime bundle ships this package whole to the instance, and the laptop reads the same code.
"""
