"""EC2 instances: launch with placement fallback, AMIs, lifecycle, prices."""
