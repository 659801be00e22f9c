"""The job workflow: start, resume, follow, run to the end, stop gracefully."""
