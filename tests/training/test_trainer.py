import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

from fakelocator.contract import Preprocessing
from fakelocator.errors import FakeLocatorError
from fakelocator.training import trainer
from fakelocator.training.augment import AugmentConfig
from fakelocator.training.checkpoint import load_model
from fakelocator.training.config import ModelConfig
from fakelocator.training.dataset import EpochSampler, FakeLocatorDataset
from fakelocator.training.losses import LossConfig
from fakelocator.training.model import build_model
from fakelocator.training.samples import load_samples
from fakelocator.training.trainer import TrainConfig, evaluate, learning_rate, load_config, map_quality, train

SIZE = Preprocessing(height=32, width=32)


def quick_config(toy_data, out, **overrides) -> TrainConfig:
    """A run of a few seconds: a 4-channel unet_lite, 3 epochs of 3 steps, validation on 16 images."""
    base = dict(
        data=[toy_data["mixed"]], val=[toy_data["val"]], out=out,
        model=ModelConfig(unet_width=4, preprocessing=SIZE),
        epochs=3, batch_size=4, max_steps_per_epoch=3, max_val_steps=4, workers=0, threads=1, lr=1e-3,
    )
    return TrainConfig(**{**base, **overrides})


def val_loader(root, batch_size=16):
    ds = FakeLocatorDataset(load_samples(root), SIZE)
    return DataLoader(ds, batch_size=batch_size, sampler=EpochSampler(len(ds), shuffle=False))


@pytest.mark.slow
@pytest.mark.trains
def test_a_tiny_model_learns_to_localize_the_toy_manipulation(toy_data, tmp_path, train_seed):
    """~100 steps cut the validation L1 by 2× and beat the best constant map, and the squares stand out.

    (The map head starts near 0, model.MAP_PRIOR_BIAS, so the untrained L1 is already that of an
    all-zero map; the best constant is the bar that matters.)

    The paper's lr (1e-4) and beta1 (0.99) are for thousands of steps; this run has 96, so it uses
    lr 1e-2 and beta1 0.9. No classifier: the map is what is tested.

    What holds for any seed and CPU, measured over seeds 0-5 with the default, AVX2 and SSE4.1
    kernels (18 runs): the L1 fell 2.7-9.2× below the untrained one and 1.5-5.1× below the best
    constant's; inside the squares the map was 54-600× higher than outside. (It asserted 5× and 2×
    before, which 8 of the 18 runs missed: seeds 4 and 5 with the default kernels, 1, 3 and 5 with
    SSE4.1, 1, 4 and 5 with AVX2.)
    """
    config = TrainConfig(
        data=[toy_data["train"]], val=[toy_data["val"]], out=tmp_path / "run",
        model=ModelConfig(unet_width=8, classifier=False, preprocessing=SIZE),
        augment=AugmentConfig(p_real=0.0), epochs=8, batch_size=8, lr=1e-2, betas=(0.9, 0.999),
        workers=0, threads=1, seed=train_seed,
    )
    loss = LossConfig()
    torch.manual_seed(train_seed)
    untrained = evaluate(build_model(config.model), val_loader(toy_data["val"]), loss, torch.device("cpu"))["map_loss"]

    result = train(config, progress=False)
    model, _ = load_model(result.weights)
    trained = evaluate(model, val_loader(toy_data["val"]), loss, torch.device("cpu"))

    gt = torch.cat([b["map"] for b in val_loader(toy_data["val"])])
    best_constant = (gt - gt.median()).abs().mean().item()  # the L1-optimal constant map
    assert trained["map_loss"] == pytest.approx(result.metrics[-1]["val"]["map_loss"], rel=1e-5)
    assert trained["map_loss"] < untrained / 2
    assert trained["map_loss"] < best_constant / 1.25
    with torch.no_grad():
        pred = torch.cat([model(b["image"])["map"] for b in val_loader(toy_data["val"])])
    inside, outside = pred[gt > 0].mean().item(), pred[gt == 0].mean().item()
    assert inside > 20 * outside, f"the squares stand out: {inside:.3f} inside vs {outside:.3f} outside"


@pytest.mark.trains
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda)])
def test_resuming_a_killed_run_ends_with_the_same_weights_bit_for_bit(toy_data, tmp_path, monkeypatch, device):
    settings = dict(device=device, deterministic=device == "cuda")
    whole = train(quick_config(toy_data, tmp_path / "whole", **settings), progress=False)

    original = trainer.train_one_epoch

    def killed_in_epoch_2(model, loader, optimizer, *args, epoch, **kwargs):
        if epoch == 2:  # die after two optimizer steps: the model and optimizer have moved on
            step, calls = optimizer.step, []

            def step_then_die(*a, **k):
                step(*a, **k)
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt

            optimizer.step = step_then_die
        return original(model, loader, optimizer, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", killed_in_epoch_2)
    config = quick_config(toy_data, tmp_path / "killed", **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert torch.load(tmp_path / "killed/last.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "killed/model.safetensors").exists()
    monkeypatch.setattr(trainer, "train_one_epoch", original)

    resumed = train(config, resume=True, progress=False)
    a, _ = load_model(whole.weights)
    b, _ = load_model(resumed.weights)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name

    def comparable(metrics):
        return [{**m, "train": {k: v for k, v in m["train"].items() if k not in ("seconds", "images_per_s")}} for m in metrics]

    assert comparable(resumed.metrics) == comparable(whole.metrics)


def test_every_epoch_leaves_a_weights_only_checkpoint_and_the_run_its_outputs(toy_data, tmp_path):
    config = quick_config(toy_data, tmp_path / "run", epochs=2, seed=4)
    result = train(config, progress=False)
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and set(ckpt["rng"]) >= {"python", "numpy", "torch"}
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.99, 0.999)
    assert ckpt["model_config"] == config.model.to_dict() and ckpt["train_config"] == config.to_dict()
    assert torch.load(out / "checkpoints/epoch_001.pt", weights_only=True)["epoch"] == 1
    assert load_config(out / "config.yaml") == config
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert set(lines[-1]["val"]) >= {"loss", "acc", "auc", "coss", "psnr", "real_acc", "fake_acc"}
    _, provenance = load_model(result.weights)
    assert provenance["seed"] == 4 and provenance["epochs"] == 2 and provenance["data"] == [str(toy_data["mixed"])]
    assert provenance["device"] == "cpu" and provenance["wall_time_s"] > 0 and provenance["date"]


def test_a_run_neither_overwrites_another_nor_resumes_what_is_not_there(toy_data, tmp_path):
    config = quick_config(toy_data, tmp_path / "run", epochs=1)
    with pytest.raises(FakeLocatorError, match="nothing to resume"):
        train(config, resume=True, progress=False)
    train(config, progress=False)
    with pytest.raises(FakeLocatorError, match="already holds a training run"):
        train(config, progress=False)
    other_model = quick_config(toy_data, tmp_path / "run", model=ModelConfig(unet_width=8, preprocessing=SIZE))
    with pytest.raises(FakeLocatorError, match="another model config"):
        train(other_model, resume=True, progress=False)


def test_fine_tuning_starts_from_the_given_weights_and_refuses_another_network(toy_data, tmp_path):
    first = train(quick_config(toy_data, tmp_path / "first", epochs=1), progress=False)
    start, _ = load_model(first.weights)

    tuned_config = quick_config(toy_data, tmp_path / "tuned", epochs=1, lr=1e-12, init_weights=first.weights)
    tuned, provenance = load_model(train(tuned_config, progress=False).weights)
    assert provenance["init_weights"] == str(first.weights)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        # a vanishing lr leaves the weights; batch-norm statistics still move, so compare a weight
        head = "decoder.head.weight"
        torch.testing.assert_close(tuned.state_dict()[head], start.state_dict()[head])
        assert tuned(x)["map"].shape == (1, 1, 32, 32)

    wider = quick_config(toy_data, tmp_path / "wider", init_weights=first.weights,
                         model=ModelConfig(unet_width=8, preprocessing=SIZE))
    with pytest.raises(FakeLocatorError, match=r"a different network \(unet_width: 4 there, 8 here\)"):
        train(wider, progress=False)


def test_without_a_validation_root_a_seeded_fraction_is_held_out(toy_data, tmp_path):
    config = quick_config(toy_data, tmp_path / "run", val=[], val_fraction=0.25)
    data = trainer.build_data(config)
    assert len(data.train) + len(data.val) == 28 and 7 <= len(data.val) <= 8  # 12 pairs + 4 entire
    assert [s.image for s in trainer.build_data(config).val.samples] == [s.image for s in data.val.samples]
    with pytest.raises(FakeLocatorError, match="no training data"):
        trainer.build_data(TrainConfig())


def test_the_defaults_are_the_papers_and_the_config_round_trips():
    d = TrainConfig()
    assert (d.epochs, d.batch_size, d.lr, d.betas, d.weight_decay) == (10, 8, 1e-4, (0.99, 0.999), 1e-7)
    assert (d.loss.map, d.augment.p_real, d.augment.p_fake, d.model.classifier) == ("l1", 1.0, 0.0, True)
    config = TrainConfig(data=["a"], model=ModelConfig(backbone="deeplabv3_resnet50"), augment=AugmentConfig(p_fake=0.5))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(FakeLocatorError, match="unknown fields"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(FakeLocatorError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_the_cosine_schedule_decays_to_zero_and_the_constant_one_is_constant():
    cosine = TrainConfig(lr=0.1, lr_schedule="cosine")
    assert [learning_rate(cosine, s, 10) for s in (0, 5, 10)] == pytest.approx([0.1, 0.05, 0.0])
    assert learning_rate(TrainConfig(lr=0.1), 7, 10) == 0.1


def test_coss_and_psnr_are_the_cosine_of_the_maps_and_ten_log_one_over_mse():
    pred = torch.tensor([[0.0, 1.0, 1.0, 0.0]]).view(1, 1, 2, 2)
    gt = torch.tensor([[0.0, 1.0, 0.5, 0.5]]).view(1, 1, 2, 2)
    coss, psnr = map_quality(pred, gt)
    assert coss.item() == pytest.approx(1.5 / (math.sqrt(2) * math.sqrt(1.5)))
    assert psnr.item() == pytest.approx(10 * math.log10(1 / 0.125))
    assert map_quality(gt, gt)[1].item() == pytest.approx(trainer.PSNR_CAP)


def test_without_a_progress_bar_the_log_still_shows_how_far_an_epoch_got(monkeypatch, caplog):
    from fakelocator.training import progress

    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    with caplog.at_level("INFO", logger=progress.log.name):
        progress.Heartbeat("epoch 1/3", total=50, enabled=True).beat(10, 80, 0.25)
        progress.Heartbeat("epoch 1/3", total=50, enabled=False).beat(11, 88, 0.25)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("epoch 1/3: step 10/50, loss 0.2500")
