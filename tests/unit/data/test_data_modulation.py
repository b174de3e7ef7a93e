"""Generated I/Q frames: shapes, determinism, SNR, class signatures, the 70/30 split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pqcompress.config import DataConfig
from pqcompress.data import build_dataset
from pqcompress.data.iq_synth import MODULATIONS, constellation, generate_frames, rrc_taps
from pqcompress.errors import ConfigError

SMALL = {
    "frames_per_class_snr": 10,
    "frame_length": 256,
    "snr_min": 0,
    "snr_max": 10,
    "snr_step": 5,
}


def frames(name: str, snr: float, n: int = 64, seed: int = 0, **kw) -> np.ndarray:
    """Complex (n, L) frames of one modulation at one SNR."""
    x = generate_frames(name, np.full(n, snr), np.random.default_rng(seed), length=512, **kw)
    return x[:, 0] + 1j * x[:, 1]


def test_bundle_shapes_classes_and_split() -> None:
    bundle = build_dataset("modulation", DataConfig(val_fraction=0.1, options=SMALL))
    assert bundle.class_names == list(MODULATIONS) and len(MODULATIONS) >= 7
    assert bundle.input_shape == (2, 256)
    n = len(MODULATIONS) * 3 * 10
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == n
    assert len(bundle.test) == round(0.3 * n)
    x, y = bundle.train[0]
    assert x.shape == (2, 256) and x.dtype == torch.float32 and y.dtype == torch.int64
    # 3 of the 10 frames of every (class, SNR) cell are test frames
    test_y, test_snr = bundle.test.targets.numpy(), bundle.test.extra("snr").numpy()
    cells = np.unique(np.stack([test_y, test_snr]), axis=1, return_counts=True)[1]
    assert cells.tolist() == [3] * (len(MODULATIONS) * 3)
    assert bundle.train.augment is None
    assert bundle.preprocessing["kind"] == "iq" and bundle.preprocessing["frame_length"] == 256


def test_frames_have_unit_power() -> None:
    x = frames("16QAM", 5.0)
    assert np.allclose(np.mean(np.abs(x) ** 2, axis=1), 1.0, atol=1e-5)
    for name in ("OOK", "BPSK", "QPSK", "8PSK", "PAM4", "16QAM", "64QAM"):
        assert np.isclose(np.mean(np.abs(constellation(name)) ** 2), 1.0)
    taps = rrc_taps(8, 0.35)
    assert np.isclose(np.sum(taps**2), 1.0) and np.allclose(taps, taps[::-1])


def test_generation_is_deterministic_per_data_seed() -> None:
    a = build_dataset("modulation", DataConfig(options=SMALL), seed=0)
    b = build_dataset("modulation", DataConfig(options=SMALL), seed=1)
    c = build_dataset("modulation", DataConfig(options={**SMALL, "data_seed": 1}))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.rows, b.test.rows)
    assert not torch.equal(a.test.x, c.test.x)
    # a class's frames do not depend on which other classes are generated
    only = build_dataset("modulation", DataConfig(options={**SMALL, "classes": ["QPSK"]}))
    qpsk = MODULATIONS.index("QPSK")
    assert torch.equal(only.train.x[only.train.y == 0], a.train.x[a.train.y == qpsk])


def roughness(x: np.ndarray) -> float:
    """Power of the sample-to-sample difference: white noise is rough, shaped pulses are smooth."""
    return float(np.mean(np.abs(np.diff(x, axis=1)) ** 2))


def test_snr_sets_the_noise_power() -> None:
    values = [roughness(frames("QPSK", snr)) for snr in (-10, 0, 10, 20)]
    assert values == sorted(values, reverse=True)
    assert values[0] > 10 * values[-1]
    # at high SNR the noise is ~1% of the power: the expected noise roughness is 2 * 10^(-SNR/10)
    assert roughness(frames("QPSK", 20)) < 0.1


def test_classes_are_distinguishable_by_simple_statistics() -> None:
    clean = {"max_freq_offset": 0.0}
    envelope_spread = {n: float(np.std(np.abs(frames(n, 30, **clean)))) for n in MODULATIONS}
    assert envelope_spread["GFSK"] < 0.05  # constant envelope
    assert min(v for k, v in envelope_spread.items() if k != "GFSK") > 0.2
    # real-valued alphabets have |E[x^2]| ~ 1, rotationally symmetric ones ~ 0
    second = {
        n: float(np.mean(np.abs(np.mean(frames(n, 30, **clean) ** 2, axis=1)))) for n in MODULATIONS
    }
    for name in ("BPSK", "PAM4"):
        assert second[name] > 0.7
    for name in ("QPSK", "8PSK", "16QAM", "64QAM"):
        assert second[name] < 0.2
    # OOK has a carrier (mean) component, BPSK does not
    assert np.mean(np.abs(frames("OOK", 30, **clean).mean(axis=1))) > 0.5
    assert np.mean(np.abs(frames("BPSK", 30, **clean).mean(axis=1))) < 0.2


def test_default_size_and_options() -> None:
    bundle = build_dataset("modulation", DataConfig(val_fraction=0.0))
    assert len(bundle.train) + len(bundle.test) == 8 * 16 * 56
    assert bundle.input_shape == (2, 1024)
    snrs = sorted(set(bundle.test.extra("snr").tolist()))
    assert snrs[0] == -10 and snrs[-1] == 20 and len(snrs) == 16


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"classes": ["QPSK", "FM"]}, "unknown entries \\['FM'\\]"),
        ({"frame_length": 0}, "frame_length must be a positive integer"),
        ({"snr_min": 10, "snr_max": 0}, "snr_max >= snr_min"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"snr": 3}, "unknown data option 'snr'"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_dataset("modulation", DataConfig(options={**SMALL, **options}))
