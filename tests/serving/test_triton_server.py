"""A real Triton server on a fresh repository of the default model, started the way users start it
(`fakelocator serve`, on free loopback ports), called over HTTP and gRPC.

One server for the module (starting one costs seconds). The tests skip, with the reason, only where
this machine cannot run a Triton server (no server installed, the bundled stub's libpython missing,
no NumPy 1.x for the bundled Python backend); a server that is there but fails is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError

ROOT = Path(__file__).parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.png"))
START_TIMEOUT_S = 120


def _skip_reason() -> str | None:
    """Why this machine cannot run the server, or None."""
    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as e:
        return f"tritonclient[http,grpc] is not installed ({e}): pip install 'fakelocator[serve]'"
    from fakelocator.runtime.triton_server import backend_python_path, find_server

    try:
        backend_python_path(find_server(), None)
    except FakeLocatorError as e:
        return f"no runnable Triton server here: {e}"
    return None


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (the repository's path: tritonserver and its stubs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class Served:
    def __init__(self, repo: Path, process: subprocess.Popen, http: str, grpc: str, log: Path):
        self.repo, self.process, self.http, self.grpc, self.log = repo, process, http, grpc, log

    def client(self, protocol: str = "http", **kwargs):
        from fakelocator.runtime.triton_client import TritonClient

        return TritonClient(self.http if protocol == "http" else self.grpc, **kwargs)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from fakelocator.export.triton import TritonOptions, write_repository
    from fakelocator.runtime.locator import default_model_path
    from fakelocator.runtime.triton_server import free_port

    tmp = tmp_path_factory.mktemp("triton")
    repo = tmp / "repo"
    # The docs' order: `export triton` with its default backend, then `serve` on the server it brings, on
    # its default (loopback) host. A queue delay long enough that requests sent together on 2 busy cores
    # meet in one batch.
    write_repository(default_model_path(), repo, TritonOptions(warmup=False, threads=1,
                                                               pipeline_queue_delay_us=20000, max_queue_delay_us=20000))
    http, grpc = free_port(), free_port()
    log = tmp / "tritonserver.log"
    command = [sys.executable, "-m", "fakelocator.cli", "serve", str(repo), "--http-port", str(http),
               "--grpc-port", str(grpc), "--no-metrics", "--log-file", str(log), "--exit-timeout", "3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    server = Served(repo, process, f"http://127.0.0.1:{http}", f"grpc://127.0.0.1:{grpc}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any("Ctrl+C" in line for line in output):
            if process.poll() is not None or time.monotonic() > deadline:
                reader.join(5)
                log_text = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
                pytest.fail(f"`fakelocator serve` did not get ready (status {process.poll()}):\n{''.join(output)}\n{log_text}")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in _processes_mentioning(str(repo)):  # only what this fixture started
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def reference(served, tmp_path_factory):
    """trt-locate's maps and records for the samples (the default model, CPU)."""
    from fakelocator.runtime.cli import main as trt_locate

    out = tmp_path_factory.mktemp("trt-locate")
    code = trt_locate([*map(str, SAMPLES), "--out", str(out), "--device", "cpu", "--quiet"])
    assert code == 0
    records = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("path"):
            records[Path(record["path"]).name] = record
    maps = {}
    for path in SAMPLES:
        found = list((out / "maps").rglob(f"{path.stem}.png"))
        assert len(found) == 1, found
        maps[path.name] = cv2.imread(str(found[0]), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return records, maps


def _coss(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_maps_and_scores_equal_trt_locate(served, reference, protocol):
    records, maps = reference
    with served.client(protocol) as client:
        results = client.locate(SAMPLES)
    assert [r.source for r in results] == [str(p) for p in SAMPLES]
    for path, result in zip(SAMPLES, results):
        want = records[path.name]
        assert result.error is None, result.error
        assert (result.height, result.width) == maps[path.name].shape == (want["height"], want["width"])
        assert result.map.dtype == np.float32 and 0.0 <= result.map.min() and result.map.max() <= 1.0
        assert _coss(result.map, maps[path.name]) >= 0.999, path.name
        assert abs(result.score - want["score"]) <= 1e-3, path.name
        assert result.label == want["label"]


def test_http_json_responses_are_strict_json_even_for_a_failed_image(served):
    import urllib.request

    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1], "data": ["not an image"]}],
            "outputs": [{"name": n} for n in ("score", "label", "error")]}
    request = urllib.request.Request(f"{served.http}/v2/models/fakelocator/infer", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        text = response.read().decode()

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    outputs = {o["name"]: o["data"] for o in json.loads(text, parse_constant=refuse)["outputs"]}
    assert outputs["score"] == [-1.0] and outputs["error"][0]


def test_grpc_and_http_statistics_agree_on_types(served):
    with served.client("http") as client:
        http = client.statistics("fakelocator_model")["model_stats"][0]
    with served.client("grpc") as client:
        grpc = client.statistics("fakelocator_model")["model_stats"][0]
    assert isinstance(http["inference_count"], int) and isinstance(grpc["inference_count"], int)
    assert isinstance(grpc["inference_stats"]["success"]["ns"], int)


def test_concurrent_requests_are_batched(served):
    def executions(model: str) -> dict[int, int]:
        with served.client("grpc") as client:
            stats = client.statistics(model)["model_stats"][0]
        return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}

    before = {m: executions(m) for m in ("fakelocator", "fakelocator_model")}
    images = [p.read_bytes() for p in SAMPLES] * 2  # 12 single-image requests, sent at once
    barrier = threading.Barrier(len(images))
    results, errors = [None] * len(images), []

    def send(i: int) -> None:
        try:
            with served.client("grpc") as client:
                barrier.wait(30)
                results[i] = client.locate([images[i]])[0]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(r is not None and r.error is None for r in results)
    for model in ("fakelocator", "fakelocator_model"):
        after = executions(model)
        merged = {b: n - before[model].get(b, 0) for b, n in after.items() if b > 1 and n > before[model].get(b, 0)}
        # every request held one image, so an execution of several is requests the dynamic batcher merged
        assert merged, f"{model}: no execution of more than one request; batch statistics {after}"


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def test_a_corrupt_image_gets_its_own_error_and_the_server_keeps_serving(served):
    good = _jpeg(cv2.imread(str(SAMPLES[0])))
    truncated = good[: len(good) // 3]
    with served.client("http") as client:
        results = client.locate([good, truncated, b"", b"GIF89a not really", good])
        assert [r.error is None for r in results] == [True, False, False, False, True]
        assert "truncated" in results[1].error or "corrupt" in results[1].error
        assert "empty" in results[2].error
        assert results[0].score == pytest.approx(results[4].score, abs=1e-6)
        assert results[1].map is None and results[1].score is None
        again = client.locate([good])  # the next request is served as usual
        assert again[0].error is None and again[0].score == pytest.approx(results[0].score, abs=1e-6)
        assert client.ready()


def test_one_hostile_image_among_others_fails_alone_and_the_server_keeps_serving(served):
    """A side over the native library's 32767 (analysed by the numpy path), a strip too small to
    analyse and a truncated file, sent while other clients send ordinary images: each bad image gets
    its own error, every other image its result, and the server stays up (it crashed with SIGSEGV)."""
    good = _jpeg(cv2.imread(str(SAMPLES[0])))
    wide = cv2.imencode(".png", np.full((16, 33000, 3), 128, np.uint8))[1].tobytes()
    thin = cv2.imencode(".png", np.full((1, 40000, 3), 128, np.uint8))[1].tobytes()
    batches = [[good, wide], [thin, good], [good[: len(good) // 2], good], [good]]
    results, errors = [None] * len(batches), []
    barrier = threading.Barrier(len(batches))

    def send(i: int) -> None:
        try:
            with served.client("http", timeout_s=240) as client:
                barrier.wait(30)
                results[i] = client.locate(batches[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert served.process.poll() is None, "the server is up"
    (g0, w), (t, g1), (cut, g2), (g3,) = results
    assert w.error is None and w.map.shape == (16, 33000)
    assert t.error.startswith("too small to analyse: 40000x1 pixels") and cut.error is not None
    assert all(g.error is None and g.score == pytest.approx(g3.score, abs=1e-6) for g in (g0, g1, g2))


def test_a_request_whose_grpc_deadline_passes_stops_holding_the_server(served):
    """Clients that send a large image and hang up (a 0.3 s deadline) do not make the next client
    wait for their tiles: the pipeline drops a cancelled request at its next network batch."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    large = _jpeg(np.random.default_rng(0).integers(0, 256, (2400, 2400, 3), dtype=np.uint8))  # 169 tiles
    data = np.array([[large]], dtype=np.object_)
    client = grpcclient.InferenceServerClient(served.grpc.removeprefix("grpc://"))
    try:
        for _ in range(3):
            tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
            tensor.set_data_from_numpy(data)
            with pytest.raises(InferenceServerException, match="(?i)deadline"):
                client.infer("fakelocator", [tensor], client_timeout=0.3)
    finally:
        client.close()
    t0 = time.monotonic()
    with served.client("grpc", timeout_s=120) as c:
        (result,) = c.locate([SAMPLES[0].read_bytes()])
    waited = time.monotonic() - t0
    assert result.error is None
    # computed to the end, the three requests of 169 tiles made it wait 48.6 s here (2 busy cores)
    assert waited < 20, f"the next request waited {waited:.1f} s"


def test_scores_without_maps(served):
    with served.client("grpc") as client:
        scores = client.locate(SAMPLES[:2], maps=False)
        full = client.locate(SAMPLES[:2])
    assert all(r.map is None for r in scores)
    assert [r.score for r in scores] == pytest.approx([r.score for r in full], abs=1e-6)


def test_an_unknown_model_or_a_closed_port_is_one_clear_error(served):
    from fakelocator.runtime.triton_client import TritonClient
    from fakelocator.runtime.triton_server import free_port

    with served.client("http", model="nope") as client:
        with pytest.raises(FakeLocatorError, match="model nope"):
            client.locate([b"x"])
    with TritonClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as client:
        with pytest.raises(FakeLocatorError, match=r"Triton http://127\.0\.0\.1:\d+ model fakelocator"):
            client.locate([b"x"])


def test_bench_triton_sweeps_concurrency_levels(served, tmp_path, capsys):
    from fakelocator.cli import main

    code = main(["bench", "--triton", served.grpc, "--concurrency", "1,3", "--requests", "3", "--triton-inputs", "direct224",
                 "--pool", "2", "--triton-warmup", "0", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "triton.json").read_text())
    assert report["dynamic_batching"] == {"fakelocator": True, "fakelocator_model": True}
    assert [level["concurrency"] for level in report["levels"]] == [1, 3]
    for level in report["levels"]:
        assert level["images"] == 3 and level["errors"] == 0 and level["images_per_s"] > 0
        assert 0 < level["p50_ms"] <= level["p95_ms"] <= level["p99_ms"]
        assert level["pipeline_batch"] >= 1 and level["network_batch"] >= 1
    assert "| concurrency | images/s |" in capsys.readouterr().out


def test_a_server_that_fails_to_start_leaves_no_shared_memory(served, tmp_path):
    """A port in use stops a second server after its models loaded (the Python backend's shared
    memory made): the failed start removes that memory, as a stop does."""
    import socket

    from fakelocator.runtime.triton_server import SHM_DIR, TritonServer, free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = TritonServer(served.repo, http_port=free_port(), grpc_port=taken.getsockname()[1], metrics_port=None,
                              host="127.0.0.1", log=str(tmp_path / "second.log"), exit_timeout_s=2)
        with pytest.raises(FakeLocatorError, match="exited with status|not ready"):
            server.start(timeout_s=START_TIMEOUT_S)
    assert "fakelocator_triton_" in server.shm_prefix
    assert sorted(SHM_DIR.glob(server.shm_prefix + "*")) == []
    log = (tmp_path / "second.log").read_text(errors="replace")
    assert server.shm_prefix in log or "shm" in log or "address" in log.lower(), log[-2000:]


def test_sigterm_under_load_stops_the_server_within_seconds_and_leaves_no_process(served):
    # the last test of the module: it stops the module's server, while three clients keep sending
    assert _processes_mentioning(str(served.repo)), "the server's processes should be running"
    stop = threading.Event()

    def keep_sending() -> None:
        images = [p.read_bytes() for p in SAMPLES[:2]]
        while not stop.is_set():
            try:
                with served.client("grpc", timeout_s=30) as client:
                    client.locate(images)
            except FakeLocatorError:
                time.sleep(0.05)  # refused while stopping, or gone: try again until told to stop

    clients = [threading.Thread(target=keep_sending, daemon=True) for _ in range(3)]
    for t in clients:
        t.start()
    time.sleep(3)
    t0 = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(60)
    elapsed = time.monotonic() - t0
    stop.set()
    for t in clients:
        t.join(40)
    assert code == 0 and elapsed < 10, (code, elapsed)
    assert _processes_mentioning(str(served.repo)) == []
    # the Python backend's shared memory is named after the server (TritonServer.shm_prefix): none is left
    assert sorted(Path("/dev/shm").glob(f"fakelocator_triton_{served.process.pid}_*")) == []
