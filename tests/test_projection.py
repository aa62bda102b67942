"""The router map's projections keep well-separated groups apart (scikit-learn PCA, t-SNE)."""

import numpy as np
import pytest

from app.session.projection import METHODS, project


def _clusters(seed: int = 0, per: int = 10, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (3, dim))
    points = np.concatenate([c + rng.normal(0, 0.5, (per, dim)) for c in centres])
    return points, np.repeat(np.arange(3), per)


@pytest.mark.parametrize("method", METHODS)
def test_separated_clusters_stay_separated(method):
    points, labels = _clusters()
    coords = project(points, method)
    assert coords.shape == (len(points), 2) and np.all(np.isfinite(coords))
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    same = labels[:, None] == labels[None]
    np.fill_diagonal(d, np.inf)
    assert np.all(labels[d.argmin(axis=1)] == labels)             # every nearest neighbour is its own group's
    np.fill_diagonal(d, 0.0)
    assert d[~same].min() > d[same].max()                          # and the groups do not overlap


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_few_points_and_equal_points(method, n):
    rng = np.random.default_rng(1)
    assert project(rng.normal(size=(n, 8)), method).shape == (n, 2)
    same = project(np.ones((max(n, 1), 8)), method)
    assert np.allclose(same, 0.0)


def test_tsne_is_reproducible():
    points, _ = _clusters(seed=2)
    assert np.array_equal(project(points, "t-SNE"), project(points, "t-SNE"))
