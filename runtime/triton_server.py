"""Start and stop a Triton Inference Server on a model repository: the work behind ``fakelocator serve``.

Which server: an explicit binary; else a ``tritonserver`` on PATH (a full Triton: the NGC container
or a Triton install, with its own backends); else the one bundled in the ``nvidia-pytriton`` wheel
(``INSTALL_BUNDLED_SERVER``: ``pip install --no-deps nvidia-pytriton`` and NumPy 1.26 in a folder of
its own, which the ``serve`` extra cannot express). The bundled one has the Python backend only, so it
serves repositories whose network is on the Python backend (``export triton``'s default for an ONNX
on the CPU); onnxruntime and tensorrt networks need a full Triton.

The bundled server needs a backend folder with the Python backend stub of this interpreter's Python
version (the wheel ships one per version; it links the system's ``libpython3.X.so``), prepared in a
temporary folder per server. Triton's Python backend runs that system Python, not this environment's:
the server gets ``FAKELOCATOR_SITE_PACKAGES`` (this environment's site-packages folders), which the
repository's ``model.py`` files put first on ``sys.path``, so the served models import this very
``fakelocator`` and its numpy, OpenCV and ONNX Runtime.

The bundled server is Triton 2.51, whose Python backend predates NumPy 2 support (its pybind11 2.10
misreads NumPy 2's dtypes: TYPE_STRING inputs crash the backend and numeric tensors arrive empty;
fixed in the Python backend in Triton 24.11, triton-inference-server/python_backend#384). It
therefore needs a folder holding NumPy 1.26 (``pip install --target DIR 'numpy>=1.26,<2'``), put first
on the Python backend's path: ``python_path``, by default ``<environment>/fakelocator-triton-python``
(what ``scripts/ensure-venv`` installs). OpenCV, ONNX Runtime and fakelocator run on NumPy 1.26 too.

The server runs in a process group of its own: ``stop`` sends SIGTERM (Triton finishes the requests in
flight, unloads the models and stops the Python backend's processes), waits, then kills whatever of
the group is left, so nothing outlives it. The Python backend's shared memory gets a name prefix of
this server's own (``shm_prefix``), and ``stop`` removes whatever of it is left in ``/dev/shm``: a
server that crashed, was killed or failed to start (a port in use) leaves none behind.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from fakelocator.errors import FakeLocatorError

#: Where POSIX shared memory lives on Linux (shm_open's files).
SHM_DIR = Path("/dev/shm")
#: Where a full Triton keeps its backends (the NGC container's layout; tritonserver's default).
SYSTEM_BACKEND_DIR = Path("/opt/tritonserver/backends")
STUB = "triton_python_backend_stub"
#: Where the bundled server's Python backend finds NumPy 1.x by default (see the module docstring).
DEFAULT_PYTHON_PATH = Path(sys.prefix) / "fakelocator-triton-python"
#: The two steps that install the bundled server (what scripts/ensure-venv does for the `serve` extra).
INSTALL_BUNDLED_SERVER = (f"{sys.executable} -m pip install --no-deps 'nvidia-pytriton==0.7.0'\n  "
                          f"{sys.executable} -m pip install --target {DEFAULT_PYTHON_PATH} 'numpy>=1.26,<2'")
NUMPY1_ADVICE = ("the bundled Triton 2.51's Python backend does not work with NumPy 2 (fixed in Triton 24.11): give it "
                 f"NumPy 1.26 with `pip install --target {DEFAULT_PYTHON_PATH} 'numpy>=1.26,<2'` (or --python-path DIR), "
                 "or use a newer Triton")


@dataclass(frozen=True)
class ServerInstall:
    """A tritonserver binary and what it needs to run.

    Attributes:
        binary: the executable.
        kind: "system" (on PATH), "given" (an explicit path) or "bundled" (nvidia-pytriton's).
        backends: the backends it can load, when known (the bundled server: python only).
        bundle: the bundled server's folder (``pytriton/tritonserver``), for its backend folder.
        libs: a folder to put on LD_LIBRARY_PATH (the wheel's shared libraries), or None.
    """

    binary: Path
    kind: str
    backends: tuple[str, ...] | None = None
    bundle: Path | None = None
    libs: Path | None = None

    def describe(self) -> str:
        what = {"system": "tritonserver on PATH", "given": "tritonserver", "bundled": "the tritonserver of nvidia-pytriton"}[self.kind]
        return f"{what} ({self.binary})"


def _bundle() -> Path | None:
    """``pytriton/tritonserver`` of an installed nvidia-pytriton, found without importing pytriton."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "tritonserver"
        if (folder / "bin" / "tritonserver").is_file():
            return folder
    return None


def _python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def bundled_server() -> ServerInstall:
    """The bundled server, or FakeLocatorError saying why it cannot run here."""
    bundle = _bundle()
    if bundle is None:
        raise FakeLocatorError(
            "no Triton server: none on PATH and nvidia-pytriton's is not installed. The `serve` extra cannot bring it "
            "(nvidia-pytriton pins numpy<2 for its Python API, which fakelocator does not use); install its server into "
            f"this environment with:\n  {INSTALL_BUNDLED_SERVER}\nor run a full Triton (the NGC container) with --server "
            "or on PATH (docs/export.md, 'Serving')")
    stub = bundle / "python_backend_stubs" / _python_version() / STUB
    if not stub.is_file():
        raise FakeLocatorError(f"nvidia-pytriton has no Python backend stub for Python {_python_version()} ({stub})")
    libs = bundle.parent.parent / "nvidia_pytriton.libs"
    missing = _missing_libraries(stub, libs)
    if missing:
        raise FakeLocatorError(
            f"the bundled Python backend stub cannot run: {', '.join(missing)} not found (it links the system's "
            f"libpython{_python_version()}: install it, e.g. apt-get install libpython{_python_version()})"
        )
    return ServerInstall(bundle / "bin" / "tritonserver", "bundled", ("python",), bundle, libs if libs.is_dir() else None)


def _missing_libraries(binary: Path, libs: Path) -> list[str]:
    """Shared libraries ``binary`` needs that the loader cannot find (empty when ldd is absent)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    env = dict(os.environ, LD_LIBRARY_PATH=_join_paths(str(libs), os.environ.get("LD_LIBRARY_PATH")))
    try:
        out = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=20, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]


def find_server(binary: str | os.PathLike | None = None) -> ServerInstall:
    """The server to run: ``binary`` when given, else tritonserver on PATH, else the bundled one."""
    if binary is not None:
        path = Path(binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FakeLocatorError(f"--server {binary}: not an executable file")
        return ServerInstall(path, "given", _system_backends())
    found = shutil.which("tritonserver")
    if found:
        return ServerInstall(Path(found), "system", _system_backends())
    return bundled_server()


def _system_backends() -> tuple[str, ...] | None:
    if not SYSTEM_BACKEND_DIR.is_dir():
        return None
    return tuple(sorted(p.name for p in SYSTEM_BACKEND_DIR.iterdir() if p.is_dir()))


_BACKEND = re.compile(r'^\s*backend\s*:\s*"([^"]+)"', re.MULTILINE)
_PLATFORM = re.compile(r'^\s*platform\s*:\s*"([^"]+)"', re.MULTILINE)
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "ensemble": ""}


def repository_models(repo: str | os.PathLike) -> dict[str, str]:
    """{model name: backend} of the models in a repository ("" for an ensemble), from their config.pbtxt."""
    repo = Path(repo)
    if not repo.is_dir():
        raise FakeLocatorError(f"model repository {repo}: no such folder")
    models = {}
    for config in sorted(repo.glob("*/config.pbtxt")):
        text = config.read_text(errors="replace")
        backend = _BACKEND.search(text)
        platform = _PLATFORM.search(text)
        models[config.parent.name] = backend.group(1) if backend else PLATFORM_BACKENDS.get(platform.group(1), platform.group(1)) if platform else "?"
    if not models:
        raise FakeLocatorError(f"model repository {repo}: no model folder with a config.pbtxt (write one with `fakelocator export triton`)")
    return models


def check_repository(repo: str | os.PathLike, install: ServerInstall) -> dict[str, str]:
    """The repository's models; FakeLocatorError when the server lacks a backend one of them needs."""
    models = repository_models(repo)
    if install.backends is None:
        return models
    missing = {name: backend for name, backend in models.items() if backend and backend not in install.backends}
    if missing:
        listed = ", ".join(f"{name} ({backend})" for name, backend in sorted(missing.items()))
        advice = (" export the ONNX with --model-backend python to serve it here, or run a full Triton (the NGC container)"
                  if install.kind == "bundled" else "")
        raise FakeLocatorError(f"{install.describe()} has backends {', '.join(install.backends)}; the repository "
                               f"{repo} needs another for {listed}:{advice}")
    return models


def site_packages() -> list[str]:
    """This environment's site-packages folders, for the Python backend (see the module docstring)."""
    folders = []
    candidates = list(site.getsitepackages()) + [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user:
        candidates.append(user)
    for folder in candidates:
        if folder and os.path.isdir(folder) and folder not in folders:
            folders.append(folder)
    return folders


def numpy_version(folder: str | os.PathLike) -> tuple[int, ...] | None:
    """The version of the numpy installed in ``folder`` (from its dist-info), None when there is none."""
    for info in Path(folder).glob("numpy-*.dist-info"):
        try:
            return tuple(int(v) for v in info.name[len("numpy-"):-len(".dist-info")].split(".")[:2])
        except ValueError:
            continue
    return None


def backend_python_path(install: ServerInstall, python_path: tuple[str, ...] | None) -> list[str]:
    """The folders the served models put first on ``sys.path``: ``python_path`` (default: for the
    bundled server, DEFAULT_PYTHON_PATH when it exists), then this environment's site-packages.

    FakeLocatorError when the bundled server would meet NumPy 2 (see the module docstring)."""
    if python_path is None:
        python_path = (str(DEFAULT_PYTHON_PATH),) if install.kind == "bundled" and DEFAULT_PYTHON_PATH.is_dir() else ()
    for folder in python_path:
        if not Path(folder).is_dir():
            raise FakeLocatorError(f"python path {folder}: no such folder")
    folders = [str(Path(f).resolve()) for f in python_path] + site_packages()
    if install.kind == "bundled":
        found = next((v for v in map(numpy_version, folders) if v is not None), None)
        if found is not None and found >= (2,):
            raise FakeLocatorError(f"NumPy {'.'.join(map(str, found))} would be the served models' NumPy: {NUMPY1_ADVICE}")
    return folders


#: Lines Triton logs as errors that are not: on a machine without a CUDA driver (a CPU server) it
#: logs an ``E…`` line from its GPU probe and serves on the CPU all the same.
FALSE_ALARMS = ("CudaDriverHelper has not been initialized",)
NO_GPU_NOTE = "(tritonserver found no CUDA driver: it serves on the CPU; its 'CudaDriverHelper' error line is left out)\n"


def is_false_alarm(line: str) -> bool:
    return any(text in line for text in FALSE_ALARMS)


def _relay(source, sink) -> None:
    """Copy the server's output to ``sink`` line by line, the FALSE_ALARMS replaced by one note."""
    noted = False
    for raw in iter(source.readline, b""):
        line = raw.decode(errors="replace")
        if is_false_alarm(line):
            if not noted:
                sink.write(NO_GPU_NOTE)
                noted = True
            continue
        sink.write(line)
        sink.flush()
    source.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _join_paths(*parts: str | None) -> str:
    return os.pathsep.join(p for p in parts if p)


@dataclass
class TritonServer:
    """One tritonserver process on a repository.

    Args:
        repo: the model repository.
        http_port, grpc_port: the endpoints' ports; metrics_port: Prometheus metrics (None: off).
        host: the address the endpoints listen on: loopback by default, so that only this machine
            reaches a server that analyses uploads; "0.0.0.0" for every interface (a container).
        server: a tritonserver binary; None: on PATH, else the bundled one (see ``find_server``).
        log: where the server's output goes: a file path, "-" (this process's stderr), or None (a
            file in the server's temporary folder, removed when it stops; its end is quoted in the
            error when the server fails to start).
        exit_timeout_s: how long Triton may finish the requests in flight when stopped.
        extra_args: more tritonserver arguments.
        python_path: folders put first on the Python backend's ``sys.path`` (see ``backend_python_path``).
    """

    repo: str | os.PathLike
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int | None = 8002
    host: str = "127.0.0.1"
    server: str | os.PathLike | None = None
    log: str | os.PathLike | None = None
    exit_timeout_s: int = 5
    extra_args: tuple[str, ...] = ()
    python_path: tuple[str, ...] | None = None
    install: ServerInstall | None = field(default=None, init=False)
    models: dict[str, str] = field(default_factory=dict, init=False)
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.repo = Path(self.repo).resolve()
        # The Python backend's shared-memory regions (/dev/shm/<prefix>*) carry each request and
        # response between the server and its stub processes; a name of this server's own lets
        # stop() remove what a crash, a kill or a failed start leaves there.
        self.shm_prefix = f"fakelocator_triton_{os.getpid()}_{uuid.uuid4().hex[:8]}_"
        self._workdir: Path | None = None
        self._log_path: Path | None = None
        self._log_handle = None
        self._python_folders: list[str] = []

    # ---- addresses ----------------------------------------------------------------------------

    @property
    def _local(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host

    @property
    def http_url(self) -> str:
        return f"http://{self._local}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self._local}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_port is None else f"http://{self._local}:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    # ---- life -----------------------------------------------------------------------------------

    def command(self) -> list[str]:
        install = self.install
        args = [
            str(install.binary),
            f"--model-repository={self.repo}",
            f"--http-address={self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--strict-readiness=true",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if self.metrics_port is None:
            args.append("--allow-metrics=false")
        else:
            args += ["--allow-metrics=true", f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                     "--allow-gpu-metrics=false" if install.kind == "bundled" else "--allow-gpu-metrics=true"]
        if install.kind == "bundled":
            args.append(f"--backend-directory={self._backend_dir()}")
        return args + list(self.extra_args)

    def _backend_dir(self) -> Path:
        """A backend folder for the bundled server: its Python backend plus this Python's stub."""
        folder = self._workdir / "backends"
        python = folder / "python"
        if not python.is_dir():
            python.mkdir(parents=True)
            bundle = self.install.bundle
            for item in (bundle / "backends" / "python").iterdir():
                if item.is_file():
                    shutil.copy2(item, python / item.name)
            shutil.copy2(bundle / "python_backend_stubs" / _python_version() / STUB, python / STUB)
        return folder

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FAKELOCATOR_SITE_PACKAGES"] = _join_paths(*self._python_folders)
        if self.install.libs is not None:
            env["LD_LIBRARY_PATH"] = _join_paths(os.environ.get("LD_LIBRARY_PATH"), str(self.install.libs))
        return env

    def start(self, timeout_s: float = 120.0) -> "TritonServer":
        """Start the server and wait until it and every model are ready; FakeLocatorError (with the end of
        its log) when it exits or is not ready within ``timeout_s``."""
        if self.process is not None:
            raise FakeLocatorError("this server is already started")
        self.install = find_server(self.server)
        self.models = check_repository(self.repo, self.install)
        self._python_folders = backend_python_path(self.install, self.python_path)
        self._workdir = Path(tempfile.mkdtemp(prefix="fakelocator-triton-"))
        if self.log == "-":
            out = subprocess.PIPE  # relayed to stderr by _relay, without the known false alarms
        else:
            self._log_path = Path(self.log) if self.log is not None else self._workdir / "tritonserver.log"
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = out = open(self._log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.command(), env=self.environment(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as e:
            self._cleanup()
            raise FakeLocatorError(f"{self.install.describe()} could not be started: {e}") from None
        if out is subprocess.PIPE:
            threading.Thread(target=_relay, args=(self.process.stdout, sys.stderr), daemon=True,
                             name="tritonserver-log").start()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"{self.http_url}/v2/health/ready"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
        while True:
            code = self.process.poll()
            if code is not None:
                raise FakeLocatorError(f"{self.install.describe()} exited with status {code} before it was ready"
                                       + self._log_tail())
            try:
                with opener.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise FakeLocatorError(f"{self.install.describe()} was not ready after {timeout_s:.0f} s" + self._log_tail())
            time.sleep(0.25)

    def _log_tail(self, lines: int = 15) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return ""
        text = self._log_path.read_text(errors="replace").splitlines()
        # Triton's startup tables are long and say little; its errors are the lines that start with E.
        errors = [line for line in text if (line.startswith("E") or "error" in line.lower()) and not is_false_alarm(line)]
        shown = (errors or text)[-lines:]
        return f"; its log ({self._log_path}) says:\n  " + "\n  ".join(shown)

    def poll(self) -> int | None:
        """None while the server runs, else its exit status."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM, wait (``exit_timeout_s`` + 10 s by default), then SIGKILL the whole process group.
        Returns the server's exit status (None when it was not started). Idempotent."""
        process = self.process
        if process is None:
            self._cleanup()
            return None
        timeout_s = self.exit_timeout_s + 10 if timeout_s is None else timeout_s
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the Python backend's stubs, if any outlived the server
        except (ProcessLookupError, PermissionError):
            pass
        code = process.wait()
        self.process = None
        self._cleanup()
        return code

    def shm_files(self) -> list[Path]:
        """The shared-memory files this server's processes created (and have not removed)."""
        return sorted(SHM_DIR.glob(self.shm_prefix + "*")) if SHM_DIR.is_dir() else []

    def _cleanup(self) -> None:
        for region in self.shm_files():  # its processes are gone: nothing maps these any more
            try:
                region.unlink()
            except OSError:
                pass
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)  # a failure's log tail is in its error message
            self._workdir = None

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
