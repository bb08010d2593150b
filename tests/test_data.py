import gzip
import hashlib
import http.server
import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, write_idx_dir

from mnist_report import data
from mnist_report.data import DataError


def test_shipped_files_match_the_documented_mnist(raw):
    assert raw.x_train.shape == (60000, 28, 28) and raw.x_train.dtype == np.uint8
    assert raw.x_test.shape == (10000, 28, 28)
    assert raw.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(raw.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(raw.y_test).sum() == 10000
    assert raw.x_train.mean() == pytest.approx(33.3184, abs=1e-3)
    assert "SHA-256 verified" in raw.source


def test_parse_idx_roundtrip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(a)), a)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(labels)), labels)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x0d\x03" + b"\x00" * 12, "magic number 0x00000d03"),
        (idx_bytes(np.zeros((2, 3), np.uint8))[:-1], "truncated or padded"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    ],
)
def test_parse_idx_rejects_malformed_content(content, message):
    with pytest.raises(DataError, match=message):
        data.parse_idx(content, "some-file")


@pytest.fixture
def data_copy(tmp_path):
    """A writable copy of the shipped data directory."""
    return Path(shutil.copytree(data.DATA_DIR, tmp_path / "mnist"))


def test_missing_file_names_the_file_and_the_fix(data_copy):
    (data_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        data.load_idx(data_copy)
    assert "t10k-labels-idx1-ubyte.gz is missing" in str(e.value)
    assert "git checkout -- data/mnist" in str(e.value)


def test_truncated_gzip_is_reported_with_the_file_name(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is not a readable gzip file"):
        data.load_idx(data_copy)


def test_not_gzip_at_all(data_copy):
    (data_copy / "train-labels-idx1-ubyte.gz").write_text("<html>404 not found</html>")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not a readable gzip file"):
        data.load_idx(data_copy)


def test_one_changed_pixel_fails_the_checksum(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[1000] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError) as e:
        data.load_idx(data_copy)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz: SHA-256" in msg and "expected 0fa7898d" in msg and "Restore" in msg


def test_missing_checksum_file(data_copy):
    (data_copy / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS is missing"):
        data.load_idx(data_copy)


def test_damaged_files_are_an_error_not_a_silent_download(data_copy, monkeypatch):
    (data_copy / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setattr(data, "load_fallback", lambda *a, **k: pytest.fail("must not fall back"))
    with pytest.raises(DataError, match="missing"):
        data.load_raw(data_copy)


def test_wrong_shape_with_a_valid_checksum_is_rejected(tmp_path):
    arrays = {
        "train-images-idx3-ubyte": np.zeros((5, 28, 27), np.uint8),
        "train-labels-idx1-ubyte": np.zeros(5, np.uint8),
        "t10k-images-idx3-ubyte": np.zeros((2, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.zeros(2, np.uint8),
    }
    d = write_idx_dir(tmp_path / "d", arrays)
    with pytest.raises(DataError, match=r"shape \(5, 28, 27\), expected \(60000, 28, 28\)"):
        data.load_idx(d)


def test_labels_file_with_an_images_magic_is_rejected(tmp_path):
    d = write_idx_dir(tmp_path / "d", {"t10k-labels-idx1-ubyte": np.zeros((10000, 1, 1), np.uint8)})
    with pytest.raises(DataError, match="expected \\(10000,\\)"):
        data.read_idx_file(d / "t10k-labels-idx1-ubyte.gz", None)


def test_splits_are_normalised_seeded_and_disjoint(raw):
    s = data.make_splits(raw, validation_fraction=0.2, seed=3, n_train=500, n_test=100)
    assert s.x_train.shape == (400, 28, 28, 1) and s.x_val.shape == (100, 28, 28, 1)
    assert s.x_test.shape == (100, 28, 28, 1) and s.x_train.dtype == np.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0 and s.x_train.max() > 0.99
    np.testing.assert_array_equal(s.y_test, raw.y_test[:100])
    again = data.make_splits(raw, validation_fraction=0.2, seed=3, n_train=500, n_test=100)
    np.testing.assert_array_equal(s.x_val, again.x_val)
    other = data.make_splits(raw, validation_fraction=0.2, seed=4, n_train=500, n_test=100)
    assert not np.array_equal(s.y_train, other.y_train)
    # validation images come from the training set and are not among the training images
    train_rows = {r.tobytes() for r in s.x_train}
    assert not any(r.tobytes() in train_rows for r in s.x_val)


def test_full_split_sizes(raw):
    s = data.make_splits(raw, validation_fraction=0.1, seed=42)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (54000, 6000, 10000)


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot(np.array([0, 9])).argmax(1), [0, 9])
    assert data.one_hot(np.array([3])).shape == (1, 10)


# --- the download fallback, against a local HTTP server (never a real host) ---


def _fake_npz() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 20, dtype=np.uint8),
        x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 5, dtype=np.uint8),
    )
    return buf.getvalue()


@pytest.fixture
def mirror(tmp_path):
    """A throwaway HTTP server on 127.0.0.1 serving a small mnist.npz; yields (base URL, its SHA-256)."""
    served = tmp_path / "served"
    served.mkdir()
    payload = _fake_npz()
    (served / "mnist.npz").write_bytes(payload)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", hashlib.sha256(payload).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


def test_fallback_downloads_verifies_and_caches(mirror, tmp_path):
    url, sha = mirror
    got = data.load_fallback(origin=url, file_hash=sha, cache_dir=tmp_path / "cache")
    assert got.x_train.shape == (20, 28, 28) and got.y_test.shape == (5,)
    assert (tmp_path / "cache" / "keras" / "mnist.npz").is_file()
    assert sha in got.source


def test_fallback_rejects_a_file_whose_hash_is_not_the_published_one(mirror, tmp_path, monkeypatch):
    url, _ = mirror
    monkeypatch.setenv(data.MIRROR_ENV, url)
    monkeypatch.setattr(data, "load_fallback", _with_cache(data.load_fallback, tmp_path / "cache"))
    with pytest.raises(DataError, match="fallback download of .*mnist.npz failed"):
        data.load_raw(tmp_path / "no-such-dir")  # no shipped files -> fallback with the published hash


def test_fallback_unreachable_mirror_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="git checkout -- data/mnist"):
        data.load_fallback(origin="http://127.0.0.1:9/", cache_dir=tmp_path)


def _with_cache(fn, cache_dir):
    return lambda *a, **k: fn(*a, cache_dir=cache_dir, **k)
