"""Which files a benchmark runs: companions beside the model, untrained architectures, fp16 conversion."""


import pytest

from fakelocator.benchmarks.models import prepare
from fakelocator.errors import FakeLocatorError


def test_the_checkpoint_beside_an_onnx_is_found_and_vice_versa(tiny_files, tmp_path):
    onnx_path, checkpoint = tiny_files
    files = prepare(model=onnx_path, checkpoint=None, untrained=None, want_fp16_onnx=False, out_dir=tmp_path)
    assert files.checkpoint == checkpoint and files.onnx_precision == "fp32" and files.config["unet_width"] == 4
    assert files.onnx_for("fp32") == onnx_path and files.onnx_for("fp16") is None
    files = prepare(model=checkpoint, checkpoint=None, untrained=None, want_fp16_onnx=False, out_dir=tmp_path)
    assert files.onnx == onnx_path


def test_an_fp16_onnx_is_converted_into_the_output_folder(tiny_files, tmp_path):
    pytest.importorskip("onnxconverter_common")
    onnx_path, _ = tiny_files
    files = prepare(model=onnx_path, checkpoint=None, untrained=None, want_fp16_onnx=True, out_dir=tmp_path / "models",
                    progress=lambda m: None)
    assert files.onnx_for("fp16") == tmp_path / "models" / "model.fp16.onnx" and files.onnx_for("fp16").is_file()


def test_untrained_architectures_are_built_saved_and_exported(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from fakelocator.export import onnx_export

    real = onnx_export.export_onnx
    monkeypatch.setattr(onnx_export, "export_onnx", lambda net, path, **kw: real(net, path, check=False, exporter="legacy"))
    files = prepare(model=None, checkpoint=None, untrained="unet_lite", want_fp16_onnx=False, out_dir=tmp_path, progress=lambda m: None)
    assert files.checkpoint.name == "untrained-unet_lite.safetensors" and files.onnx.name == "untrained-unet_lite.onnx"
    assert files.config["backbone"] == "unet_lite" and files.config["unet_width"] == 8 and "untrained" in files.weights


def test_a_failed_export_leaves_the_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from fakelocator.export import onnx_export

    def fail(*args, **kwargs):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(onnx_export, "export_onnx", fail)
    messages = []
    files = prepare(model=None, checkpoint=None, untrained="unet_lite", want_fp16_onnx=False, out_dir=tmp_path, progress=messages.append)
    assert files.onnx is None and files.checkpoint.is_file() and files.config["backbone"] == "unet_lite"
    assert any("exporter broke" in m for m in messages) and files.notes


def test_missing_files_and_conflicting_options_are_errors(tmp_path, tiny_files, monkeypatch):
    with pytest.raises(FakeLocatorError, match="no such file"):
        prepare(model=tmp_path / "nope.onnx", checkpoint=None, untrained=None, want_fp16_onnx=False, out_dir=tmp_path)
    with pytest.raises(FakeLocatorError, match="either --model or --untrained"):
        prepare(model=tiny_files[0], checkpoint=None, untrained="unet_lite", want_fp16_onnx=False, out_dir=tmp_path)
    from fakelocator.runtime import locator

    monkeypatch.setattr(locator, "default_model_path", lambda: tmp_path / "weights" / "model.onnx")
    with pytest.raises(FakeLocatorError, match="--untrained unet_lite"):
        prepare(model=None, checkpoint=None, untrained=None, want_fp16_onnx=False, out_dir=tmp_path)
