"""``workflow train``: N instances, one job each, from launch to outputs to termination."""
