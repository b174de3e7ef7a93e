"""Vectorized synthesis of modulated I/Q frames: RRC/Gaussian pulse shaping, carrier offsets, AWGN."""

from __future__ import annotations

import math

import numpy as np

LINEAR = ("OOK", "BPSK", "QPSK", "8PSK", "PAM4", "16QAM", "64QAM")
MODULATIONS = (*LINEAR, "GFSK")
FILTER_SPAN = 8  # pulse-shaping filters span this many symbols
GFSK_BT, GFSK_INDEX = 0.35, 0.5


def constellation(name: str) -> np.ndarray:
    """The symbol alphabet of a linear modulation, scaled to unit mean power."""
    if name == "OOK":
        points = np.array([0.0, 1.0])
    elif name == "PAM4":
        points = np.array([-3.0, -1.0, 1.0, 3.0])
    elif name.endswith("PSK"):
        m = {"BPSK": 2, "QPSK": 4, "8PSK": 8}[name]
        points = np.exp(2j * np.pi * np.arange(m) / m + (1j * np.pi / 4 if m == 4 else 0))
    elif name.endswith("QAM"):
        side = math.isqrt(int(name[:-3]))
        levels = np.arange(side) * 2.0 - (side - 1)
        points = (levels[:, None] + 1j * levels[None, :]).reshape(-1)
    else:
        raise ValueError(f"unknown linear modulation {name!r}; accepted: {', '.join(LINEAR)}")
    points = points.astype(np.complex128)
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def rrc_taps(sps: int, rolloff: float, span: int = FILTER_SPAN) -> np.ndarray:
    """Root-raised-cosine impulse response over ``span`` symbols, unit energy."""
    t = np.arange(-span * sps // 2, span * sps // 2 + 1) / sps
    beta = rolloff
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))
        h = num / (np.pi * t * (1 - (4 * beta * t) ** 2))
    h[t == 0] = 1 - beta + 4 * beta / np.pi
    if beta > 0:
        edge = np.isclose(np.abs(t), 1 / (4 * beta))
        h[edge] = (beta / np.sqrt(2)) * (
            (1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
            + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta))
        )
    return h / np.sqrt(np.sum(h**2))


def gaussian_taps(sps: int, bt: float = GFSK_BT, span: int = 4) -> np.ndarray:
    """Gaussian frequency-smoothing filter of bandwidth-time product ``bt``, unit DC gain."""
    t = np.arange(-span * sps // 2, span * sps // 2 + 1) / sps
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    h = np.exp(-(t**2) / (2 * sigma**2))
    return h / h.sum()


def fft_filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Full linear convolution of every row of ``x`` with ``taps`` (through one batched FFT)."""
    n = x.shape[1] + taps.shape[0] - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.ifft(np.fft.fft(x, size, axis=1) * np.fft.fft(taps, size), axis=1)[:, :n]
    return out if np.iscomplexobj(x) else out.real


def baseband(
    name: str, frames: int, length: int, sps: int, rolloff: float, rng: np.random.Generator
) -> np.ndarray:
    """Noise-free complex baseband (frames, length) of modulation ``name``, unit power per frame,
    each frame starting at a random symbol-timing offset."""
    n_sym = -(-length // sps) + FILTER_SPAN + 2
    if name == "GFSK":
        bits = rng.integers(0, 2, (frames, n_sym)) * 2.0 - 1.0
        freq = fft_filter(np.repeat(bits, sps, axis=1), gaussian_taps(sps))
        signal = np.exp(1j * np.pi * GFSK_INDEX * np.cumsum(freq, axis=1) / sps)
    else:
        points = constellation(name)
        upsampled = np.zeros((frames, n_sym * sps), dtype=np.complex128)
        upsampled[:, ::sps] = points[rng.integers(0, len(points), (frames, n_sym))]
        signal = fft_filter(upsampled, rrc_taps(sps, rolloff))
    start = FILTER_SPAN * sps + rng.integers(0, sps, frames)
    window = np.take_along_axis(signal, start[:, None] + np.arange(length), axis=1)
    return window / np.sqrt(np.mean(np.abs(window) ** 2, axis=1, keepdims=True))


def impair(
    signal: np.ndarray, snr_db: np.ndarray, max_freq_offset: float, rng: np.random.Generator
) -> np.ndarray:
    """Random carrier phase, frequency offset (|f| <= max, cycles/sample), AWGN at ``snr_db``
    (per frame, relative to unit signal power), then unit mean power per frame."""
    frames, length = signal.shape
    phase = rng.uniform(0, 2 * np.pi, frames)
    offset = rng.uniform(-max_freq_offset, max_freq_offset, frames)
    rotation = np.exp(1j * (2 * np.pi * offset[:, None] * np.arange(length) + phase[:, None]))
    sigma = np.sqrt(10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10) / 2)[:, None]
    noise = sigma * (
        rng.standard_normal((frames, length)) + 1j * rng.standard_normal((frames, length))
    )
    received = signal * rotation + noise
    return received / np.sqrt(np.mean(np.abs(received) ** 2, axis=1, keepdims=True))


def generate_frames(
    name: str,
    snr_db: np.ndarray,
    rng: np.random.Generator,
    *,
    length: int = 1024,
    sps: int = 8,
    rolloff: float = 0.35,
    max_freq_offset: float = 5e-4,
) -> np.ndarray:
    """float32 (len(snr_db), 2, length) I/Q frames of modulation ``name``, one per SNR entry."""
    if name not in MODULATIONS:
        raise ValueError(f"unknown modulation {name!r}; accepted: {', '.join(MODULATIONS)}")
    snr_db = np.asarray(snr_db, dtype=np.float64).reshape(-1)
    clean = baseband(name, snr_db.shape[0], length, sps, rolloff, rng)
    received = impair(clean, snr_db, max_freq_offset, rng)
    return np.stack([received.real, received.imag], axis=1).astype(np.float32)
