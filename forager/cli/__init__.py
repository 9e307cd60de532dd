"""The command line: each module parses its command's options and prints its results; the work is in the library.

`forager` is `forager.cli:app` (main.py); `tasks`, `collect`, `export`, `serve` and `dev` hold those commands,
`common` what they share (settings, store, progress, errors).
"""

from forager.cli.main import app

__all__ = ["app"]
