"""A user's script arguments reach the script's ``sys.argv`` exactly, whatever they contain,
when the job goes through the real start command, bash, the detached runner and the script."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.cloud.runner_sandbox import RunnerSandbox

ECHO_ARGV = (
    "import json, os, sys\n"
    "open(os.environ['RUNCTL_OUTPUT_DIR'] + '/argv.json', 'w', encoding='utf-8')"
    ".write(json.dumps(sys.argv[1:]))\n"
)
ARG = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(args=st.lists(ARG, max_size=6))
@example(args=["'", '"', ";", "$(touch /tmp/pwned)", "`id`", "a\nb", "-x", "--", "ünï ☃", ""])
@example(args=["--epochs", "2", "$HOME", "*", "\\", "'\"'\"'", "&& echo hi", "\t"])
def test_arguments_reach_the_script_exactly(instance: RunnerSandbox, args: list[str]) -> None:
    spec = instance.new_job({"echo_argv.py": ECHO_ARGV}, "echo_argv.py", args=args)

    assert instance.start(spec).returncode == 0
    status = instance.wait(spec)

    assert status["state"] == "succeeded", status
    location = spec.location
    assert location is not None
    assert json.loads(instance.read(location.prefix + "outputs/argv.json")) == args
