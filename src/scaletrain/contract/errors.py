"""Errors a user can cause. Each message is one sentence naming the bad value and the fix."""

from scaletrain.contract.exit_codes import ExitCode


class ScaletrainError(Exception):
    """A user-caused error: the CLI prints its message without a traceback and exits 2."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(ScaletrainError):
    """A configuration value is wrong or missing."""


class ClusterEnvError(ScaletrainError):
    """The launcher or cluster handed this process a malformed environment."""


class LaunchError(ScaletrainError):
    """Processes, jobs or clusters could not be started as asked."""


class NonFiniteLossError(ScaletrainError):
    """The loss became NaN or infinite under train.on_nonfinite=stop: a restart from the last checkpoint would
    repeat it, so the job ends with this code of its own (4), and every rank raises it at the same step."""

    exit_code = ExitCode.NONFINITE
    rank_zero_only = True  # every rank reads the same reduced loss: rank 0 says it
