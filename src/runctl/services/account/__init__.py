"""The account around the jobs: setup (role, profile, bucket) and what runctl owns in it."""
