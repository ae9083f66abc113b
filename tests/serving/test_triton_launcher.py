"""How `fakelocator serve` finds a server and checks a repository, and the client's URLs: no server needed."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.runtime import triton_server as ts
from fakelocator.runtime.triton_client import Endpoint


def write_config(repo: Path, name: str, line: str) -> None:
    (repo / name).mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(f'# comment\nname: "{name}"\n{line}\nmax_batch_size: 4\n')


def test_repository_models_reads_backends_and_platforms(tmp_path):
    write_config(tmp_path, "fakelocator", 'backend: "python"')
    write_config(tmp_path, "fakelocator_model", 'backend: "onnxruntime"')
    write_config(tmp_path, "old", 'platform: "tensorrt_plan"')
    (tmp_path / "notes").mkdir()  # no config.pbtxt: not a model
    assert ts.repository_models(tmp_path) == {"fakelocator": "python", "fakelocator_model": "onnxruntime", "old": "tensorrt"}
    with pytest.raises(FakeLocatorError, match="no such folder"):
        ts.repository_models(tmp_path / "missing")
    with pytest.raises(FakeLocatorError, match="no model folder with a config.pbtxt"):
        ts.repository_models(tmp_path / "notes")


def test_the_bundled_server_refuses_a_network_it_has_no_backend_for(tmp_path):
    write_config(tmp_path, "fakelocator", 'backend: "python"')
    write_config(tmp_path, "fakelocator_model", 'backend: "onnxruntime"')
    bundled = ts.ServerInstall(Path("/x/tritonserver"), "bundled", ("python",))
    with pytest.raises(FakeLocatorError, match=r"needs another for fakelocator_model \(onnxruntime\).*--model-backend python"):
        ts.check_repository(tmp_path, bundled)
    unknown = ts.ServerInstall(Path("/x/tritonserver"), "system", None)  # a system server's backends may be anywhere
    assert ts.check_repository(tmp_path, unknown)["fakelocator_model"] == "onnxruntime"


def test_the_bundled_python_backend_must_not_meet_numpy_2(tmp_path, monkeypatch):
    numpy1, numpy2 = tmp_path / "np1", tmp_path / "np2"
    (numpy1 / "numpy-1.26.4.dist-info").mkdir(parents=True)
    (numpy2 / "numpy-2.4.6.dist-info").mkdir(parents=True)
    monkeypatch.setattr(ts, "site_packages", lambda: [str(numpy2)])
    bundled = ts.ServerInstall(Path("/x/tritonserver"), "bundled", ("python",))
    assert ts.numpy_version(numpy1) == (1, 26) and ts.numpy_version(tmp_path) is None
    assert ts.backend_python_path(bundled, (str(numpy1),)) == [str(numpy1.resolve()), str(numpy2)]
    with pytest.raises(FakeLocatorError, match="NumPy 2.4 would be the served models' NumPy.*numpy>=1.26,<2"):
        ts.backend_python_path(bundled, ())
    system = ts.ServerInstall(Path("/x/tritonserver"), "system", None)
    assert ts.backend_python_path(system, ()) == [str(numpy2)]  # a current Triton takes NumPy 2
    with pytest.raises(FakeLocatorError, match="no such folder"):
        ts.backend_python_path(bundled, (str(tmp_path / "nope"),))


def test_an_explicit_server_must_be_an_executable(tmp_path):
    with pytest.raises(FakeLocatorError, match="not an executable file"):
        ts.find_server(tmp_path / "tritonserver")


def test_serve_reports_a_bad_repository_in_one_line(tmp_path, capsys):
    from fakelocator.cli import main

    code = main(["serve", str(tmp_path / "missing"), "--server", "/bin/true"])
    err = capsys.readouterr().err
    assert code == 2 and "no such folder" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("url, protocol, want", [
    ("http://triton:8000", None, ("http", "triton:8000")),
    ("grpc://10.0.0.5:8001/", None, ("grpc", "10.0.0.5:8001")),
    ("localhost:8001", "grpc", ("grpc", "localhost:8001")),
    ("localhost:8000", None, ("http", "localhost:8000")),
])
def test_endpoints(url, protocol, want):
    endpoint = Endpoint.parse(url, protocol)
    assert (endpoint.protocol, endpoint.address) == want and str(endpoint) == f"{want[0]}://{want[1]}"


@pytest.mark.parametrize("url, protocol, message", [
    ("https://triton:8000", None, "scheme must be http or grpc"),
    ("http://triton:8000", "grpc", "says http"),
    ("triton:8000/v2", None, "expected host:port"),
    ("triton:8000", "udp", "protocol must be one of"),
])
def test_bad_endpoints(url, protocol, message):
    with pytest.raises(FakeLocatorError, match=message):
        Endpoint.parse(url, protocol)


def test_bench_load_test_of_a_server_that_is_not_there_is_one_line(capsys, tmp_path):
    from fakelocator.cli import main

    pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed: pip install 'fakelocator[serve]'")
    code = main(["bench", "--triton", f"http://127.0.0.1:{ts.free_port()}", "--request-timeout", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is not ready" in err and err.strip().splitlines()[-1].startswith("fakelocator bench: error:")


def test_the_server_listens_on_loopback_unless_told_otherwise(tmp_path):
    from fakelocator.commands.serve import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([str(tmp_path)]).host == "127.0.0.1"
    server = ts.TritonServer(tmp_path)
    server.install = ts.ServerInstall(Path("/x/tritonserver"), "system")
    assert "--http-address=127.0.0.1" in server.command() and "--grpc-address=127.0.0.1" in server.command()
    exposed = ts.TritonServer(tmp_path, host="0.0.0.0")
    exposed.install = server.install
    assert "--http-address=0.0.0.0" in exposed.command() and exposed.http_url == "http://127.0.0.1:8000"


def test_the_no_gpu_false_alarm_is_left_out_of_the_log_and_said_once():
    log = io.BytesIO(b"I1207 starting\nE1207 cuda_driver.cc:52] \"CudaDriverHelper has not been initialized.\"\n"
                     b"E1207 again \"CudaDriverHelper has not been initialized.\"\nI1207 ready\n")
    shown = io.StringIO()
    ts._relay(log, shown)
    assert shown.getvalue() == "I1207 starting\n" + ts.NO_GPU_NOTE + "I1207 ready\n"


def test_a_missing_server_is_met_with_the_commands_that_install_it(monkeypatch):
    monkeypatch.setattr(ts, "_bundle", lambda: None)
    with pytest.raises(FakeLocatorError) as e:
        ts.bundled_server()
    message = str(e.value)
    assert f"{sys.executable} -m pip install --no-deps 'nvidia-pytriton==0.7.0'" in message
    assert f"--target {ts.DEFAULT_PYTHON_PATH} 'numpy>=1.26,<2'" in message
    assert "pip install 'fakelocator[serve]'" not in message  # the extra does not bring the server


def test_grpc_statistics_have_the_integers_http_has():
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    from fakelocator.runtime.triton_client import message_to_dict

    response = service_pb2.ModelStatisticsResponse()
    stats = response.model_stats.add(name="fakelocator_model", version="1", inference_count=12, execution_count=5)
    stats.inference_stats.success.count, stats.inference_stats.success.ns = 5, 123456789012
    batch = stats.batch_stats.add(batch_size=4)
    batch.compute_infer.count = 2
    d = message_to_dict(response)["model_stats"][0]
    assert d["version"] == "1" and d["inference_count"] == 12 and d["inference_stats"]["success"]["ns"] == 123456789012
    assert d["batch_stats"] == [{"batch_size": 4, "compute_infer": {"count": 2}}]
