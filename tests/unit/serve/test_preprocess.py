"""Image and tensor preprocessing of the service: manifest normalization, shapes, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pqcompress.serve.errors import RequestError
from pqcompress.serve.preprocess import Preprocessing, softmax

DIGITS = {"size": [8, 8], "channels": "L", "mean": [0.3], "std": [0.4], "pixel_scale": 16.0}


def _encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def test_gray_png_is_normalized_like_training():
    pre = Preprocessing.from_manifest((1, 8, 8), DIGITS)
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    x = pre.image(_encode(pixels))
    assert x.shape == (1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], (pixels / 255.0 - 0.3) / 0.4, atol=1e-6)


def test_rgb_model_converts_gray_and_resizes():
    pre = Preprocessing.from_manifest(
        (3, 4, 4), {"channels": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0]}
    )
    x = pre.image(_encode(np.full((16, 16), 255, np.uint8)))
    assert x.shape == (3, 4, 4)
    np.testing.assert_allclose(x[:, 0, 0], [2.0, 1.0, 0.5], atol=1e-6)


def test_missing_or_inconsistent_statistics_mean_identity():
    pre = Preprocessing.from_manifest((1, 2, 2), {"mean": [0.1, 0.2], "std": [1.0]})
    assert pre.mean == (0.0,) and pre.std == (1.0,) and pre.mode == "L"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "empty"),
        (b"plain text", 415, "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, 422, "undecodable_image"),
    ],
)
def test_bad_images(data, status, code):
    with pytest.raises(RequestError) as err:
        Preprocessing.from_manifest((1, 8, 8), DIGITS).image(data)
    assert (err.value.status, err.value.code) == (status, code)


def test_tensor_models_refuse_images():
    pre = Preprocessing.from_manifest((2, 1024), {"kind": "iq", "channels": "IQ"})
    with pytest.raises(RequestError) as err:
        pre.image(_encode(np.zeros((8, 8), np.uint8)))
    assert err.value.code == "images_not_supported" and "[2, 1024]" in err.value.message


def test_tensor_checks():
    pre = Preprocessing.from_manifest((1, 2, 2), None)
    assert pre.tensor([[[1, 2], [3, 4]]], 4).shape == (1, 1, 2, 2)  # one sample
    assert pre.tensor(np.zeros((3, 1, 2, 2), np.float64), 4).dtype == np.float32
    cases = [
        (np.zeros((5, 1, 2, 2)), "too_many_inputs"),
        (np.zeros((1, 3, 2, 2)), "wrong_shape"),
        ([], "empty"),
        (np.array([[[np.nan, 0], [0, 0]]]), "not_finite"),
        (np.array([[[1e39, 0], [0, 0]]]), "not_finite"),  # overflows float32
        ([[[True, False], [True, True]]], "bad_tensor"),
        ([[1, 2], [3]], "bad_tensor"),
    ]
    for value, code in cases:
        with pytest.raises(RequestError) as err:
            pre.tensor(value, 4)
        assert err.value.code == code, value
    with pytest.raises(RequestError, match="3 channels, the model takes 1"):
        pre.tensor(np.zeros((1, 3, 2, 2)), 4)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.5, 0.5]], atol=1e-6)
