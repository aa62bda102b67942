"""2-D projections of router inputs or weights for the router map: PCA and t-SNE (the paper's
figure uses t-SNE), both from scikit-learn. Runs in the worker with the map job."""

from __future__ import annotations

import numpy as np

METHODS = ("t-SNE", "PCA")


def pca(x: np.ndarray) -> np.ndarray:
    """The first two principal components; zeros where the points do not spread (0 or 1 point,
    or all equal), a zero second column where they spread along one direction only."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=float)
    n = len(x)
    centred = x - x.mean(axis=0) if n else x
    if n < 2 or not np.any(centred):
        return np.zeros((n, 2))
    components = min(2, n, x.shape[1])
    coords = PCA(n_components=components, svd_solver="full").fit_transform(x)
    if components < 2:
        coords = np.column_stack([coords, np.zeros(n)])
    return coords


def tsne(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE started from the PCA layout (so equal inputs give equal maps); below four points,
    where t-SNE has no neighbourhoods to keep, PCA itself."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 4 or not np.any(x - x.mean(axis=0)):
        return pca(x)
    # perplexity must stay below the number of points; about a third of them, at most 30
    perplexity = min(30.0, max(2.0, (n - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                max_iter=500, method="exact" if n < 200 else "barnes_hut").fit_transform(x)


def project(x, method: str = "t-SNE") -> np.ndarray:
    x = np.asarray(x, dtype=float).reshape(len(x), -1) if len(x) else np.zeros((0, 2))
    return tsne(x) if method == "t-SNE" else pca(x)
