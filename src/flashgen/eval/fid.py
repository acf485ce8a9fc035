"""Shapes-FID and k-NN precision/recall on the Shapes World feature network.

FID (Heusel et al. 2017): with feature means mu and covariances S of the two sets,
    FID = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
KID (Binkowski et al. 2018): the unbiased squared MMD with the kernel k(x, y) = (x.y / D + 1)^3;
its expectation is 0 for two samples of one distribution at any sample size, unlike FID, whose
small-sample bias is of the order of Tr(S)/N (report N with every FID).
Precision/recall (Kynkaanniemi et al. 2019): each sample's manifold ball has the radius of its
k-th nearest neighbour within its own set; precision is the share of generated samples inside
some real ball (quality), recall the share of real samples inside some generated ball (diversity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from flashgen.shapes.featnet import extract_features


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features; N >= 2."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors (N, D), got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2) (the FID formula above).

    Tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S1^(1/2) S2 S1^(1/2) (same spectrum as S1 S2): exact, and free of the complex
    round-off that `scipy.linalg.sqrtm(S1 @ S2)` shows on the rank-deficient covariances of small
    sample sets (a test checks both agree on well-conditioned ones).
    """
    diff = mu1 - mu2
    root1 = _psd_sqrt(s1)
    eig = linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def kid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (KID) between (N, D) and (M, D) features."""
    if min(len(a), len(b)) < 2:
        raise ValueError("KID needs at least 2 feature vectors per set")
    d = a.shape[1]
    kaa, kbb, kab = ((x @ y.T / d + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    n, m = len(a), len(b)
    within_a = (kaa.sum() - np.trace(kaa)) / (n * (n - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
    return float(within_a + within_b - 2 * kab.mean())


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row."""
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of `fake` features against `real` (k-NN manifolds)."""
    if k < 1:
        raise ValueError(f"precision/recall needs k >= 1, got {k}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    d = _pairwise(real, fake)  # (R, F)
    precision = (d <= _radii(real, k)[:, None]).any(0).mean()
    recall = (d <= _radii(fake, k)[None, :]).any(1).mean()
    return float(precision), float(recall)


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """n rows of x, drawn with a fixed seed (x itself when it has n rows)."""
    if len(x) == n:
        return x
    return x[np.random.default_rng(0).choice(len(x), n, replace=False)]


@dataclass(frozen=True)
class QualityScore:
    fid: float
    kid: float
    precision: float
    recall: float
    n_real: int
    n_fake: int

    def to_dict(self) -> dict:
        return {
            "fid": self.fid,
            "kid": self.kid,
            "precision": self.precision,
            "recall": self.recall,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
        }


def shapes_quality(real_images: np.ndarray, fake_images: np.ndarray, k: int = 3) -> QualityScore:
    """Shapes-FID, KID and precision/recall between uint8 image sets (N, 64, 64, 3).

    FID and KID use every real image (a larger reference set lowers FID's bias); precision and
    recall compare equal-sized sets, as the k-NN radii depend on the set size, so the larger set
    is subsampled (fixed seed) to the size of the smaller one.
    """
    real, fake = extract_features(real_images), extract_features(fake_images)
    n = min(len(real), len(fake))
    p, r = precision_recall(_subsample(real, n), _subsample(fake, n), k)
    fid, kid = fid_from_features(real, fake), kid_from_features(real, fake)
    return QualityScore(fid, kid, p, r, len(real), len(fake))
