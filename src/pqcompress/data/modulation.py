"""Generated digital-modulation I/Q frames (2xL) over an SNR range, split 70/30 like the study."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from pqcompress.config import DataConfig
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.assemble import assemble_bundle
from pqcompress.data.bundle import DataBundle
from pqcompress.data.iq_synth import MODULATIONS, generate_frames
from pqcompress.data.options import name_list, number, positive_int, resolve_options
from pqcompress.data.registry import register_dataset
from pqcompress.data.splits import fraction_count, stratified_pick
from pqcompress.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "classes": list(MODULATIONS),
    "frame_length": 1024,
    "snr_min": -10,
    "snr_max": 20,
    "snr_step": 2,
    "frames_per_class_snr": 56,  # 8 classes x 16 SNRs x 56 = 7,168 frames
    "samples_per_symbol": 8,
    "rolloff": 0.35,
    "max_freq_offset": 5e-4,
    "data_seed": 0,
    "test_fraction": 0.3,
}


def snr_grid(snr_min: float, snr_max: float, step: float) -> np.ndarray:
    """SNR values snr_min, snr_min + step, ..., up to and including snr_max."""
    if not step > 0 or snr_max < snr_min:
        raise ConfigError(
            f"modulation: need snr_step > 0 and snr_max >= snr_min, got {snr_min}..{snr_max} step {step}"
        )
    return np.arange(snr_min, snr_max + step / 2, step, dtype=np.float64)


def generate_dataset(opts: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x float32 (N, 2, L), y int64 (N,), snr float32 (N,))`` for resolved options.

    Each class draws from its own stream seeded by (data_seed, class name), so a class's
    frames do not change when other classes are added or removed.
    """
    classes = name_list("modulation", "classes", opts["classes"], MODULATIONS)
    snrs = snr_grid(
        number("modulation", "snr_min", opts["snr_min"]),
        number("modulation", "snr_max", opts["snr_max"]),
        number("modulation", "snr_step", opts["snr_step"]),
    )
    per = positive_int("modulation", "frames_per_class_snr", opts["frames_per_class_snr"])
    length = positive_int("modulation", "frame_length", opts["frame_length"])
    sps = positive_int("modulation", "samples_per_symbol", opts["samples_per_symbol"])
    seed = int(opts["data_seed"])
    snr = np.repeat(snrs, per)
    xs = []
    for name in classes:
        rng = np.random.default_rng([seed % 2**64, zlib.crc32(name.encode())])
        xs.append(
            generate_frames(
                name,
                snr,
                rng,
                length=length,
                sps=sps,
                rolloff=number("modulation", "rolloff", opts["rolloff"]),
                max_freq_offset=number("modulation", "max_freq_offset", opts["max_freq_offset"]),
            )
        )
    y = np.repeat(np.arange(len(classes), dtype=np.int64), snr.shape[0])
    return np.concatenate(xs), y, np.tile(snr, len(classes)).astype(np.float32)


def split_by_class_and_snr(
    y: np.ndarray, snr: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions: ``test_fraction`` of every (class, SNR) cell goes to test."""
    cell = y * 100_000 + np.round(snr * 10).astype(np.int64)
    test, train = stratified_pick(cell, fraction_count(len(y), test_fraction), [seed % 2**64, 7])
    return train, test


def test_fraction_of(name: str, opts: dict) -> float:
    """The validated ``test_fraction`` option (checked before any data is read or made)."""
    test_fraction = number(name, "test_fraction", opts["test_fraction"])
    if not 0 < test_fraction < 1:
        raise ConfigError(f"{name}: test_fraction={test_fraction} must be in (0, 1)")
    return test_fraction


def iq_bundle(
    name: str,
    cfg: DataConfig,
    seed: int,
    frames: tuple[np.ndarray, np.ndarray, np.ndarray],
    opts: dict,
    source: str,
) -> DataBundle:
    """A DataBundle of I/Q frames ``(x, y, snr)``: a test split stratified by class and SNR
    (``opts["test_fraction"]``, seeded by ``opts["data_seed"]``), per-frame SNR kept."""
    test_fraction = test_fraction_of(name, opts)
    x, y, snr = frames
    train_idx, test_idx = split_by_class_and_snr(y, snr, test_fraction, int(opts["data_seed"]))
    full = ArrayDataset(
        torch.from_numpy(x), torch.from_numpy(y), extras={"snr": torch.from_numpy(snr)}
    )
    return assemble_bundle(
        name,
        cfg,
        seed,
        train=full.select(torch.from_numpy(train_idx)),
        test=full.select(torch.from_numpy(test_idx)),
        class_names=list(opts["classes"]),
        augment=None,
        preprocessing=iq_preprocessing(x.shape[-1]),
        source=source,
    )


@register_dataset("modulation")
def build_modulation(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """Generated frames; the data and the 70/30 train/test split depend on ``data_seed`` only."""
    opts = resolve_options("modulation", cfg.options, DEFAULTS)
    test_fraction_of("modulation", opts)  # fail before generating
    source = (
        f"generated: {len(opts['classes'])} modulations, SNR {opts['snr_min']}..{opts['snr_max']} dB "
        f"step {opts['snr_step']}, {opts['frames_per_class_snr']} frames per class and SNR, "
        f"data_seed {opts['data_seed']}"
    )
    return iq_bundle("modulation", cfg, seed, generate_dataset(opts), opts, source)


TOKEN_DEFAULTS: dict[str, Any] = {**DEFAULTS, "frame_length": 128, "levels": 16, "clip": 1.5}


def iq_tokens(x: np.ndarray, levels: int, clip: float) -> np.ndarray:
    """I/Q frames (N, 2, L) as token ids (N, L), int64: I and Q each clipped to [-clip, clip]
    and cut into ``levels`` equal bins, token = bin(I) * levels + bin(Q) (vocabulary
    ``levels ** 2``)."""
    q = np.floor((np.clip(x, -clip, clip) + clip) / (2 * clip) * levels).astype(np.int64)
    q = np.minimum(q, levels - 1)
    return q[:, 0, :] * levels + q[:, 1, :]


@register_dataset("modulation-tokens")
def build_modulation_tokens(cfg: DataConfig, *, seed: int = 0) -> DataBundle:
    """The modulation frames as integer tokens (one per complex sample, I and Q each in
    ``levels`` bins; 128 samples by default): a sequence set for token models (embeddings,
    transformer encoders, LSTMs). Same classes, SNRs and split as ``modulation``."""
    opts = resolve_options("modulation-tokens", cfg.options, TOKEN_DEFAULTS)
    test_fraction_of("modulation-tokens", opts)
    levels = positive_int("modulation-tokens", "levels", opts["levels"])
    clip = number("modulation-tokens", "clip", opts["clip"])
    if levels < 2 or levels > 256 or not clip > 0:
        raise ConfigError(
            f"modulation-tokens: need 2 <= levels <= 256 and clip > 0, got {levels}, {clip}"
        )
    frames_opts = {k: v for k, v in opts.items() if k in DEFAULTS}
    x, y, snr = generate_dataset(frames_opts)
    tokens = iq_tokens(x, levels, clip)
    source = (
        f"generated: {len(opts['classes'])} modulations as {levels}x{levels} I/Q tokens, "
        f"{opts['frame_length']} per frame, SNR {opts['snr_min']}..{opts['snr_max']} dB, "
        f"data_seed {opts['data_seed']}"
    )
    bundle = iq_bundle("modulation-tokens", cfg, seed, (tokens, y, snr), opts, source)
    bundle.preprocessing = {
        "kind": "tokens",
        "vocab_size": levels * levels,
        "sequence_length": int(opts["frame_length"]),
        "tokenizer": f"I/Q clipped to +-{clip:g}, {levels} bins each, id = I_bin * {levels} + Q_bin",
    }
    return bundle


def iq_preprocessing(length: int) -> dict[str, Any]:
    """Preprocessing record for I/Q frames: (2, L) float, unit mean power per frame."""
    return {
        "kind": "iq",
        "frame_length": length,
        "channels": "IQ",
        "layout": "CL",
        "power_normalization": "unit mean power per frame",
    }
