"""Single-sample clustering (paper Sec. IV-D): detection without the classifier.

The encoder features the classifier reads (the model's ``features`` output) are reduced to 2-D by
t-SNE, split into two clusters by k-means, and **one labelled sample** decides which cluster is fake:
its own cluster gets its label, the other cluster the other label. Because which sample is picked
matters, the paper repeats the pick ten times and averages the accuracy; the spread is reported too.

With two clusters, a pick either names the clusters right (accuracy ``a``, the share of images whose
cluster agrees with their label under the right naming) or wrong (``1 − a``), so the mean over picks
estimates how often a random labelled sample lands in the "right" cluster.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from fakelocator.errors import FakeLocatorError

DEFAULT_PICKS = 10
#: t-SNE's default perplexity; lowered to (n − 1) / 3 for small sets (it must stay below n).
PERPLEXITY = 30.0
MIN_SAMPLES = 5


def default_threads() -> int:
    """Half the CPUs, at least one. t-SNE's OpenMP and BLAS threads spin-wait: on a busy 2-core machine
    their default (one per core) made t-SNE of 1,000 points take 38 s instead of 7.6 s with one
    thread (measured)."""
    return max(1, (os.cpu_count() or 1) // 2)


@dataclass
class ClusteringResult:
    """Accuracy of single-sample clustering over ``picks`` random labelled samples.

    Attributes:
        accuracies: the accuracy after each pick, in pick order.
        picks: the index of the labelled sample of each pick.
        mean, std: of ``accuracies`` (population std).
        best_naming_acc: the accuracy had the clusters been named the best way (cluster purity): the
            ceiling of any pick.
        n, n_fake: images clustered, fakes among them.
        embedding: the (n, 2) t-SNE coordinates; clusters: the (n,) k-means cluster of each image.
    """

    accuracies: list[float]
    picks: list[int]
    mean: float
    std: float
    best_naming_acc: float
    n: int
    n_fake: int
    perplexity: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    clusters: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("embedding"), d.pop("clusters")
        return d


def pick_accuracies(clusters: np.ndarray, labels: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """For each picked index: name its cluster by its label, the other cluster by the other label,
    and return the accuracy of that naming over all images."""
    clusters = np.asarray(clusters).astype(np.int64)
    labels = np.asarray(labels).astype(np.int64)
    if not np.isin(clusters, (0, 1)).all():
        raise FakeLocatorError("clusters must be 0 or 1")
    fake_is_one = np.mean(clusters == labels)  # accuracy when cluster 1 is named "fake"
    named_right = clusters[picks] == labels[picks]  # the pick's cluster is 1 iff it is fake
    return np.where(named_right, fake_is_one, 1.0 - fake_is_one)


def single_sample_clustering(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    picks: int = DEFAULT_PICKS,
    seed: int = 0,
    perplexity: float | None = None,
    threads: int | None = None,
) -> ClusteringResult:
    """t-SNE → k-means (2 clusters) → ``picks`` single-labelled-sample namings (seeded).

    Args:
        features: (n, C) encoder features, one row per image.
        labels: (n,) 0 real, 1 fake; only the picked samples' labels are "seen" by the method, the
            rest score it.
        picks: how many random labelled samples to try (10 in the paper).
        seed: fixes t-SNE, k-means and the picks.
        perplexity: t-SNE perplexity (default min(30, (n − 1) / 3)).
        threads: OpenMP/BLAS threads for t-SNE and k-means (default: ``default_threads()``).
    """
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, np.float64)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise FakeLocatorError(f"features must be (n, C) with one row per label; got {x.shape} for {y.shape[0]} labels")
    n = x.shape[0]
    if n < MIN_SAMPLES:
        raise FakeLocatorError(f"single-sample clustering needs at least {MIN_SAMPLES} images, got {n}")
    if picks < 1:
        raise FakeLocatorError(f"picks must be >= 1, got {picks}")
    if not np.isfinite(x).all():
        raise FakeLocatorError("the features contain NaN or infinite values")
    perplexity = float(perplexity if perplexity is not None else min(PERPLEXITY, (n - 1) / 3))
    with threadpool_limits(limits=threads or default_threads()):
        embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(embedding)
    chosen = np.random.default_rng([seed, 0x5EED]).integers(0, n, picks)
    acc = pick_accuracies(clusters, y, chosen)
    purity = float(np.mean(clusters == y))
    return ClusteringResult(
        accuracies=[float(a) for a in acc],
        picks=[int(i) for i in chosen],
        mean=float(acc.mean()),
        std=float(acc.std()),
        best_naming_acc=max(purity, 1.0 - purity),
        n=n,
        n_fake=int(y.sum()),
        perplexity=perplexity,
        embedding=embedding,
        clusters=clusters,
    )


def plot(result: ClusteringResult, labels: np.ndarray, path, title: str = ""):
    """The t-SNE embedding (paper Figs. 8–9): colour = true label, marker = k-means cluster."""
    from matplotlib.figure import Figure

    y = np.asarray(labels).astype(np.int64)
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    for cluster, marker in ((0, "o"), (1, "^")):
        for label, color, name in ((0, "tab:blue", "real"), (1, "tab:red", "fake")):
            sel = (result.clusters == cluster) & (y == label)
            if sel.any():
                ax.scatter(*result.embedding[sel].T, s=10, c=color, marker=marker, alpha=0.7,
                           label=f"{name}, cluster {cluster}")
    ax.set_title(title or f"t-SNE of features; single-sample ACC {result.mean:.3f} ± {result.std:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
