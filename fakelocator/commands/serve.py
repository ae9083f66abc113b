"""Serve a Triton model repository written by `fakelocator export triton`.

  fakelocator serve models/ [--http-port 8000] [--grpc-port 8001] [--metrics-port 8002 | --no-metrics]
                    [--host 127.0.0.1] [--server PATH] [--python-path DIR] [--log-file PATH] [--start-timeout 180]

Starts a tritonserver on the repository: --server, else one on PATH (a full Triton, e.g. the NGC
container), else the one bundled in the nvidia-pytriton wheel (Python backend only: it serves what
`export triton` writes for an ONNX on the CPU; install it as docs/export.md says, or as the error
message says when it is missing). It listens on loopback only unless --host says otherwise (in a
container: --host 0.0.0.0; the server analyses what anyone who reaches it sends). Waits until every model is
ready, prints the endpoints, and runs until SIGINT (Ctrl+C) or SIGTERM, then stops the server and
everything it started.

Call it with `fakelocator.runtime.triton_client.TritonClient("http://HOST:8000").locate([...])`, or any
Triton client (docs/export.md has curl and Python examples).
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

from fakelocator.errors import FakeLocatorError
from fakelocator.flags import deprecated_alias


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", type=Path, help="the model repository (written by `fakelocator export triton`)")
    parser.add_argument("--http-port", type=_port, default=8000, help="HTTP/REST port (default 8000)")
    parser.add_argument("--grpc-port", type=_port, default=8001, help="gRPC port (default 8001)")
    parser.add_argument("--metrics-port", type=_port, default=8002, help="Prometheus metrics port (default 8002)")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false", help="no metrics endpoint")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface, "
                        "e.g. in a container)")
    parser.add_argument("--server", help="a tritonserver binary (default: on PATH, else nvidia-pytriton's)")
    parser.add_argument("--python-path", action="append", metavar="DIR",
                        help="a folder put first on the Python backend's sys.path (repeatable; the bundled server needs "
                        "NumPy 1.x there, default <environment>/fakelocator-triton-python)")
    parser.add_argument("--log-file", help="write the server's log here (default: this terminal)")
    parser.add_argument("--start-timeout", dest="timeout", type=float, default=180.0, metavar="SECONDS",
                        help="seconds to wait for the server and its models to be ready (default 180)")
    deprecated_alias(parser, "--timeout", "--start-timeout", "timeout", type=float)
    parser.add_argument("--exit-timeout", type=int, default=5,
                        help="seconds the server may finish requests in flight when stopped (default 5)")


class _Stop(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    from fakelocator.runtime.triton_server import TritonServer

    server = TritonServer(
        args.repo, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port if args.metrics else None, host=args.host, server=args.server,
        log=args.log_file or "-", exit_timeout_s=args.exit_timeout,
        python_path=tuple(args.python_path) if args.python_path else None,
    )
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            _say(f"starting Triton on {Path(args.repo).resolve()} ...")
            server.start(timeout_s=args.timeout)
            _say(f"ready: {server.install.describe()}, pid {server.process.pid}")
            for name, backend in sorted(server.models.items()):
                _say(f"  model {name} ({backend or 'ensemble'})")
            _say(f"  HTTP     {server.http_url}    e.g. curl {server.http_url}/v2/models/{_entry(server.models)}")
            _say(f"  gRPC     {server.grpc_url}")
            if server.metrics_url:
                _say(f"  metrics  {server.metrics_url}")
            _say("Ctrl+C or SIGTERM stops it.")
            while server.poll() is None:
                time.sleep(0.5)
            raise FakeLocatorError(f"the server exited by itself with status {server.poll()}"
                                   + (f"; see {server.log_path}" if server.log_path else ""))
        except _Stop as e:
            _say(f"{e}: stopping the server ...")
            code = server.stop()
            _say(f"stopped (tritonserver exit status {code})")
            return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.stop()


def _entry(models: dict[str, str]) -> str:
    """The model to show in the example URL: the pipeline when there is one."""
    names = sorted(models)
    return next((n for n in names if f"{n}_model" in models), names[0] if names else "")


def _say(message: str) -> None:
    print(f"fakelocator serve: {message}", flush=True)
