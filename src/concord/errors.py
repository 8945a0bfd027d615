"""Exceptions that Concord reports to the user as a single line."""


class ConfigError(ValueError):
    """Bad user input (config key, value, registry name, missing dependency); reported as one line."""


class EnvWorkerError(RuntimeError):
    """An environment worker failed more often than ``max_env_failures`` allows."""
