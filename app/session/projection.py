"""2-D projections of router-weight vectors for the router map: PCA and a small exact t-SNE
(the paper's figure uses t-SNE). Pure numpy; runs in the worker with the map job."""

from __future__ import annotations

import numpy as np

METHODS = ("t-SNE", "PCA")


def pca(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2))
    centred = x - x.mean(axis=0)
    if n == 1 or not np.any(centred):
        return np.zeros((n, 2))
    _u, _s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.column_stack([coords, np.zeros(n)])
    return coords


def _affinities(d2: np.ndarray, perplexity: float, tol: float = 1e-5) -> np.ndarray:
    n = len(d2)
    p = np.zeros((n, n))
    target = np.log(perplexity)
    for i in range(n):
        row = np.delete(d2[i], i)
        lo, hi, beta = 0.0, np.inf, 1.0
        for _ in range(60):
            e = np.exp(-(row - row.min()) * beta)
            s = e.sum()
            h = np.log(s) + beta * np.sum((row - row.min()) * e) / s
            if abs(h - target) < tol:
                break
            if h > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        p[i, np.arange(n) != i] = e / s
    return p


def tsne(x: np.ndarray, iterations: int = 500, seed: int = 0) -> np.ndarray:
    """Exact t-SNE for up to a few hundred points (the map shows edits and recent probes)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 4:
        return pca(x)
    x = x - x.mean(axis=0)
    scale = x.std() or 1.0
    x = x / scale
    d2 = np.square(x[:, None, :] - x[None, :, :]).sum(-1)
    p = _affinities(d2, perplexity=min(30.0, max(2.0, (n - 1) / 3)))
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    rng = np.random.default_rng(seed)
    y = pca(x)
    y = 1e-4 * y / (np.abs(y).max() or 1.0) + rng.normal(0, 1e-5, (n, 2))
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    rate = max(n / 12.0, 50.0)
    for it in range(iterations):
        exaggeration = 12.0 if it < 100 else 1.0
        diff = y[:, None, :] - y[None, :, :]
        num = 1.0 / (1.0 + np.square(diff).sum(-1))
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        grad = 4.0 * (((exaggeration * p - q) * num)[:, :, None] * diff).sum(1)
        momentum = 0.5 if it < 250 else 0.8
        same = np.sign(grad) == np.sign(velocity)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01)
        velocity = momentum * velocity - rate * gains * grad
        y = y + velocity
        y = y - y.mean(axis=0)
    return y


def project(x, method: str = "t-SNE") -> np.ndarray:
    x = np.asarray(x, dtype=float).reshape(len(x), -1) if len(x) else np.zeros((0, 2))
    return tsne(x) if method == "t-SNE" else pca(x)
