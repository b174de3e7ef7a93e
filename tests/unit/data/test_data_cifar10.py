"""cifar10 from tiny fake sources: python batches, image trees, tarballs, the cache, every DataError."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from pqcompress.config import DataConfig
from pqcompress.data import build_dataset
from pqcompress.data import cifar10 as cifar
from pqcompress.data.safe_pickle import load_numpy_pickle
from pqcompress.errors import DataError


def build(root: Path | str, **kw) -> object:
    return build_dataset("cifar10", DataConfig(root=str(root), val_fraction=0.0, **kw))


def test_python_batches_folder(tmp_path: Path, cifar_batches) -> None:
    folder = cifar_batches(tmp_path / "cifar-10-batches-py", n_batches=3, per_batch=10)
    bundle = build(folder)
    first_batch_pixels = np.random.default_rng(0).integers(0, 256, (10, 3072), dtype=np.uint8)
    assert (len(bundle.train), len(bundle.test)) == (30, 10)
    assert bundle.class_names == list(cifar.CIFAR10_CLASSES) and bundle.num_classes == 10
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.train.x.dtype == torch.uint8 and bundle.train.x.shape == (30, 3, 32, 32)
    # the bytes are the official layout: 1024 R, 1024 G, 1024 B values per row
    assert np.array_equal(bundle.train.x[:10].reshape(10, -1).numpy(), first_batch_pixels)
    assert bundle.train.targets.tolist() == list(range(10)) * 3
    assert "CIFAR-10 from" in bundle.source and "JPEG" not in bundle.source
    x, y = bundle.train[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert bundle.preprocessing["channels"] == "RGB" and len(bundle.preprocessing["mean"]) == 3


def test_parent_folder_with_batches_subfolder_and_protocol_5(tmp_path: Path, cifar_batches) -> None:
    cifar_batches(tmp_path / "cifar-10-batches-py", protocol=5)
    assert len(build(tmp_path).test) == 10


def test_second_build_loads_from_cache(
    tmp_path: Path, cifar_batches, isolated_env: Path, monkeypatch
) -> None:
    folder = cifar_batches(tmp_path / "batches")
    first = build(folder)
    assert len(list((isolated_env / "cifar10").iterdir())) == 1

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again despite an up-to-date cache")

    monkeypatch.setattr(cifar, "read_batches", no_decode)
    second = build(folder)
    assert torch.equal(first.train.x, second.train.x)
    assert first.preprocessing == second.preprocessing


def test_changed_source_is_decoded_again(tmp_path: Path, cifar_batches, isolated_env: Path) -> None:
    folder = cifar_batches(tmp_path / "batches")
    first = build(folder)
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    batch[b"data"] = 255 - batch[b"data"]
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    os.utime(folder / "test_batch", ns=(10**18, 10**18))
    second = build(folder)
    assert torch.equal(second.test.x, 255 - first.test.x)
    assert len(list((isolated_env / "cifar10").iterdir())) == 1  # stale entry replaced


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_image_tree(tmp_path: Path, image_tree, ext: str) -> None:
    root = image_tree(tmp_path / "tree", ext=ext, per_class=2)
    bundle = build(root)
    assert (len(bundle.train), len(bundle.test)) == (20, 20)
    assert bundle.train.targets.tolist() == [c for c in range(10) for _ in range(2)]
    assert bundle.train.x.shape == (20, 3, 32, 32)
    assert ("JPEG" in bundle.source) == (ext == "jpg")
    if ext == "png":  # lossless: pixels survive exactly
        from PIL import Image

        img = np.asarray(Image.open(root / "train" / "bird" / "0001.png"))
        assert np.array_equal(bundle.train.x[5].permute(1, 2, 0).numpy(), img)


def test_jpeg_tarball_and_its_cache(tmp_path: Path, image_tree, make_tarball, isolated_env) -> None:
    tree = image_tree(tmp_path / "tree", ext="jpg", per_class=1)
    tarball = make_tarball(tree, tmp_path / "cifar10-jpeg.tar.gz", "cifar10-jpeg")
    from_tar = build(tarball)
    from_dir_of_tar = build(tmp_path)  # a folder holding cifar10-jpeg.tar.gz
    assert torch.equal(from_tar.train.x, build(tree).train.x)
    assert torch.equal(from_dir_of_tar.train.x, from_tar.train.x)
    assert (len(from_tar.train), len(from_tar.test)) == (10, 10)


def test_official_python_tarball(tmp_path: Path, cifar_batches, make_tarball) -> None:
    folder = cifar_batches(tmp_path / "src" / "cifar-10-batches-py")
    tarball = make_tarball(folder, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    bundle = build(tarball)
    assert torch.equal(bundle.train.x, build(folder).train.x)


def test_discovery_through_env_var(tmp_path: Path, cifar_batches, monkeypatch) -> None:
    cifar_batches(tmp_path / "data" / "cifar-10-batches-py")
    monkeypatch.setenv("PQCOMPRESS_DATA_DIR", str(tmp_path / "data"))
    assert len(build_dataset("cifar10", DataConfig(val_fraction=0.0)).train) == 20


def test_val_carve_out_is_stratified(tmp_path: Path, cifar_batches) -> None:
    folder = cifar_batches(tmp_path / "b", n_batches=5, per_batch=20)
    bundle = build_dataset("cifar10", DataConfig(root=str(folder), val_fraction=0.1), seed=0)
    assert len(bundle.val) == 10 and len(bundle.train) == 90
    assert torch.bincount(bundle.val.targets).tolist() == [1] * 10
    assert bundle.train.augment is not None and bundle.train.augment.pad == 4


# ---------------------------------------------------------------- errors


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_foreign_globals(tmp_path: Path, cifar_batches) -> None:
    payload = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    with pytest.raises(DataError, match=r"refusing to load .*(posix|os)\.system"):
        load_numpy_pickle(payload, "evil")
    folder = cifar_batches(tmp_path / "b")
    (folder / "data_batch_1").write_bytes(payload)
    with pytest.raises(DataError, match="data_batch_1"):
        build(folder)


def test_restricted_unpickler_loads_numpy_arrays() -> None:
    value = {b"a": np.arange(5, dtype=np.int16), b"b": [1, 2], b"c": np.float32(2.5)}
    for protocol in (2, 4, 5):
        out = load_numpy_pickle(pickle.dumps(value, protocol=protocol), "ok")
        assert np.array_equal(out[b"a"], value[b"a"]) and out[b"c"] == 2.5


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; expected .*data_batch_1\.\.5"):
        build(tmp_path / "nowhere")


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no CIFAR-10 data in .*expected"):
        build(tmp_path)


def test_train_folder_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"no class folders under .*train; expected train/<class>/"):
        build(tmp_path)


def test_missing_and_unexpected_class_folders(tmp_path: Path, image_tree) -> None:
    image_tree(tmp_path, classes=["airplane", "zebra"], per_class=1)
    with pytest.raises(
        DataError, match=r"missing class folders .*'cat'.*unexpected folders \['zebra'\]"
    ):
        build(tmp_path)


def test_missing_test_split(tmp_path: Path, image_tree) -> None:
    image_tree(tmp_path, splits=["train"], per_class=1)
    with pytest.raises(DataError, match=r"test does not exist"):
        build(tmp_path)


def test_corrupt_image(tmp_path: Path, image_tree) -> None:
    image_tree(tmp_path, per_class=1)
    (tmp_path / "test" / "cat" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*cat/0000\.png"):
        build(tmp_path)


def test_batches_folder_without_test_batch(tmp_path: Path, cifar_batches) -> None:
    folder = cifar_batches(tmp_path / "b")
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match=r"expected data_batch_1\.\.5 and test_batch"):
        build(folder)


def test_malformed_batch(tmp_path: Path, cifar_batches) -> None:
    folder = cifar_batches(tmp_path / "b")
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(DataError, match=r"test_batch: 'data' must be a uint8 array \(n, 3072\)"):
        build(folder)


def test_corrupt_tarball(tmp_path: Path) -> None:
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08" + os.urandom(200))
    with pytest.raises(DataError, match=r"cannot read tarball .*cifar-10-python\.tar\.gz"):
        build(bad)


def test_truncated_tarball(tmp_path: Path, cifar_batches, make_tarball) -> None:
    folder = cifar_batches(tmp_path / "src")
    good = make_tarball(folder, tmp_path / "full.tar.gz", "cifar-10-batches-py")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.tar\.gz.*(corrupt or truncated)"):
        build(cut)


def test_tarball_with_unrelated_members(tmp_path: Path, make_tarball) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.txt").write_text("hello")
    tarball = make_tarball(src, tmp_path / "other.tar.gz", "other")
    with pytest.raises(DataError, match="contains neither cifar-10-batches-py/data_batch_"):
        build(tarball)


# ---------------------------------------------------------------- download


def test_download_checks_md5_then_uses_the_file(
    tmp_path: Path, cifar_batches, make_tarball, isolated_env: Path, monkeypatch
) -> None:
    folder = cifar_batches(tmp_path / "src")
    tarball = make_tarball(folder, tmp_path / "served.tar.gz", "cifar-10-batches-py")
    monkeypatch.delenv("PQCOMPRESS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    monkeypatch.setattr(cifar, "CIFAR10_URL", tarball.as_uri())
    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*md5"):
        build_dataset("cifar10", DataConfig(val_fraction=0.0))
    assert not (isolated_env / "downloads" / cifar.PYTHON_TARBALL).exists()
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(tarball.read_bytes()).hexdigest())
    bundle = build_dataset("cifar10", DataConfig(val_fraction=0.0))
    assert (isolated_env / "downloads" / cifar.PYTHON_TARBALL).is_file()
    assert len(bundle.train) == 20


def test_download_can_be_turned_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PQCOMPRESS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "none"))
    with pytest.raises(DataError, match=r"downloading is off"):
        build_dataset("cifar10", DataConfig(options={"download": False}))


# ---------------------------------------------------------------- the real file


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("PQC_SLOW") != "1", reason="decodes 60,000 JPEGs; set PQC_SLOW=1"
)
def test_real_cifar10_jpeg_tarball() -> None:
    path = Path(os.environ.get("PQCOMPRESS_DATA_DIR", "none"), "cifar10-jpeg.tar.gz")
    if not path.is_file():
        pytest.skip("no shared CIFAR-10 tarball")
    bundle = build_dataset("cifar10", DataConfig(root=str(path), val_fraction=0.1))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (45_000, 5_000, 10_000)
    assert torch.bincount(bundle.test.targets).tolist() == [1000] * 10
