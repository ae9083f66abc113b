import pytest
import torch

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.training.checkpoint import load_model, save_weights
from fakelocator.training.config import ModelConfig
from fakelocator.training.model import HighPassStem, build_model, load_pretrained_backbone

BACKBONES = ["unet_lite", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet101"]


def _config(backbone, size=(224, 224), classifier=True):
    return ModelConfig(backbone=backbone, classifier=classifier, preprocessing=Preprocessing(height=size[0], width=size[1]))


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("size", [(224, 224), (128, 192)])
def test_outputs_have_the_input_resolution_and_unit_range(backbone, size):
    torch.manual_seed(0)
    model = build_model(_config(backbone, size)).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out["map"].shape == (2, 1, *size)
    assert out["score"].shape == (2, 1) and out["logit"].shape == (2, 1)
    assert out["features"].shape == (2, model.feature_channels)
    for key in ("map", "score"):
        assert torch.isfinite(out[key]).all() and out[key].min() >= 0 and out[key].max() <= 1


def test_the_classifier_also_runs_at_sizes_other_than_the_configured_one():
    model = build_model(_config("unet_lite", (224, 224))).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 160, 288))
    assert out["map"].shape == (1, 1, 160, 288) and out["score"].shape == (1, 1)


def test_without_classifier_the_score_is_the_strongest_cell_of_the_map():
    model = build_model(_config("unet_lite", classifier=False)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out["logit"] is None
    cells = torch.nn.functional.avg_pool2d(out["map"], 8)
    assert out["score"].item() == pytest.approx(cells.max().item(), rel=1e-6)


@pytest.mark.parametrize("backbone", ["unet_lite", "deeplabv3_mobilenet_v3_large"])
def test_a_white_attention_map_is_the_identity(backbone):
    torch.manual_seed(0)
    model = build_model(_config(backbone)).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model(x)
        white = model(x, attention=torch.ones(2, 1, 224, 224))
        dark = model(x, attention=torch.zeros(2, 1, 224, 224))
    for key in ("map", "score", "features"):
        torch.testing.assert_close(white[key], plain[key], rtol=0, atol=0)
    assert not dark["features"].any(), "a black map silences the encoder features"


def test_every_parameter_gets_a_gradient():
    model = build_model(_config("unet_lite")).train()
    out = model(torch.randn(2, 3, 224, 224), attention=torch.rand(2, 1, 224, 224))
    (out["map"].mean() + out["logit"].sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_the_highpass_stem_passes_the_image_and_its_residual_which_is_zero_where_the_image_is_flat():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:, :] = 1.0  # flat halves meeting at a horizontal edge
    out = HighPassStem(gain=8.0)(x)
    assert out.shape == (1, 6, 8, 8)
    torch.testing.assert_close(out[:, :3], x)
    residual = out[:, 3:]
    assert not residual[..., :3, :].any() and not residual[..., 5:, :].any(), "flat areas and borders give no residual"
    torch.testing.assert_close(residual[..., 3, :], torch.full((1, 3, 8), -8 / 3))
    torch.testing.assert_close(residual[..., 4, :], torch.full((1, 3, 8), 8 / 3))


def test_a_highpass_stem_model_round_trips_and_is_refused_on_deeplab(tmp_path):
    model = build_model(ModelConfig(unet_width=4, highpass_stem=True)).eval()
    save_weights(tmp_path / "m.safetensors", model)
    again, _ = load_model(tmp_path / "m.safetensors")
    assert again.config.highpass_stem
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["map"], model(x)["map"])
    with pytest.raises(FakeLocatorError, match="highpass_stem"):
        ModelConfig(backbone="deeplabv3_mobilenet_v3_large", highpass_stem=True)


def test_weights_round_trip_through_safetensors_with_config_and_provenance(tmp_path):
    model = build_model(ModelConfig(unet_width=4)).eval()
    save_weights(tmp_path / "m.safetensors", model, provenance={"seed": 3})
    again, provenance = load_model(tmp_path / "m.safetensors")
    assert again.config == model.config and provenance == {"seed": 3}
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["map"], model(x)["map"])


def test_pretrained_backbone_comes_from_a_local_torchvision_checkpoint(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.manual_seed(1)
    reference = mobilenet_v3_large(weights=None)
    torch.save(reference.state_dict(), tmp_path / "mobilenet.pth")
    model = build_model(_config("deeplabv3_mobilenet_v3_large"))
    assert load_pretrained_backbone(model, tmp_path / "mobilenet.pth") > 100
    torch.testing.assert_close(model.encoder["0"][0].weight, reference.features[0][0].weight)
    with pytest.raises(FakeLocatorError, match="no such file"):
        build_model(pretrained_backbone=tmp_path / "missing.pth")
    with pytest.raises(FakeLocatorError, match="no tensor matches"):
        load_pretrained_backbone(build_model(), tmp_path / "mobilenet.pth")
