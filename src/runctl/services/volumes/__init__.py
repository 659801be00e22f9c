"""EBS data volumes: create, attach and mount, pre-warm from S3, snapshot and restore, and the
data volume that follows a job's capacity to another zone."""
