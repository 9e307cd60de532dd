"""Pure environment detection: repository paths and config text in, an EnvSpec out (no I/O)."""

from .detect import detect
from .errors import DetectError
from .override import apply_override
from .plugin_files import plugin_files
from .wanted import wanted

__all__ = ["DetectError", "apply_override", "detect", "plugin_files", "wanted"]
