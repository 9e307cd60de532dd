"""The one error the sandbox raises to its caller."""


class SandboxError(Exception):
    """The environment itself is broken (container gone, docker failing, start patch not applying).

    The message is one line; the caller ends the episode with exit reason env_error.
    """
