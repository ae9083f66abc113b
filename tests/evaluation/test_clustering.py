"""Single-sample clustering: the right cluster on separable features, and the statistics over picks."""

from __future__ import annotations

import numpy as np
import pytest

from fakelocator.errors import FakeLocatorError
from fakelocator.evaluation.clustering import pick_accuracies, single_sample_clustering
from fakelocator.evaluation.runner import EvalSettings, evaluate
from fakelocator.training.samples import load_samples


def blobs(n_real: int, n_fake: int, distance: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n_real + n_fake, 16))
    x[n_real:, :4] += distance
    y = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    return x, y


def test_separable_features_are_clustered_right_whatever_sample_is_picked():
    x, y = blobs(30, 20, distance=12.0)
    r = single_sample_clustering(x, y, picks=10, seed=0)
    assert r.accuracies == [1.0] * 10 and r.mean == 1.0 and r.std == 0.0
    assert r.best_naming_acc == 1.0 and (r.n, r.n_fake) == (50, 20)
    assert r.embedding.shape == (50, 2) and set(r.clusters.tolist()) == {0, 1}


def test_one_labelled_sample_names_both_clusters():
    clusters = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # image 3 is real but sits in the fake cluster
    # cluster 1 named "fake" is right for 9 of 10 images; the naming a pick makes depends on whether
    # the pick's cluster agrees with its label
    np.testing.assert_allclose(pick_accuracies(clusters, labels, np.array([0, 5, 3, 9])), [0.9, 0.9, 0.1, 0.9])


def test_statistics_over_ten_seeded_picks():
    x, y = blobs(20, 20, distance=2.5, seed=1)  # overlapping: some images sit in the wrong cluster
    r = single_sample_clustering(x, y, picks=10, seed=4)
    assert len(r.accuracies) == len(r.picks) == 10
    assert r.mean == pytest.approx(np.mean(r.accuracies)) and r.std == pytest.approx(np.std(r.accuracies))
    np.testing.assert_allclose(r.accuracies, pick_accuracies(r.clusters, y, np.array(r.picks)))
    assert set(np.round(r.accuracies, 12)) <= {round(r.best_naming_acc, 12), round(1 - r.best_naming_acc, 12)}
    again = single_sample_clustering(x, y, picks=10, seed=4)
    assert again.picks == r.picks and again.accuracies == r.accuracies
    assert single_sample_clustering(x, y, picks=10, seed=5).picks != r.picks


def test_bad_inputs_are_refused():
    x, y = blobs(2, 2, 5.0)
    with pytest.raises(FakeLocatorError, match="at least 5"):
        single_sample_clustering(x, y)
    x, y = blobs(5, 5, 5.0)
    with pytest.raises(FakeLocatorError, match="one row per label"):
        single_sample_clustering(x, y[:-1])


def test_the_runner_clusters_the_models_features(locator, dataset):
    # the red model's features are channel means: the red entire syntheses and real images separate
    result = evaluate(locator, load_samples(dataset), EvalSettings(cluster=True, cluster_picks=10))
    c = result.clustering
    assert c["n"] == 14 and len(c["accuracies"]) == 10 and 0.0 <= c["mean"] <= 1.0
    assert result.clustering_result.embedding.shape == (14, 2)


def test_clustering_is_skipped_with_a_reason_without_features(tmp_path, dataset, by_hand):
    from fakelocator.runtime import Locator

    model = by_hand.build_red_model(tmp_path / "nofeatures.onnx", features=False)
    with Locator.load(model, device="cpu", batch_size=4, workers=2) as loc:
        result = evaluate(loc, load_samples(dataset), EvalSettings(cluster=True))
    assert "features" in result.clustering["skipped"] and result.clustering_result is None
