"""Your own digit image: made to look like MNIST, then classified; bad files get clear errors."""

import json

import numpy as np
import pytest
from PIL import Image

from mnist_report import data, paths, predict
from mnist_report.__main__ import main
from mnist_report.config import TrainConfig
from mnist_report.modeling import train
from mnist_report.modeling.model import load_model, predict_proba

N = 300  # test digits written out as files


@pytest.fixture(scope="module")
def model_path(raw, tmp_path_factory):
    """A baseline network trained briefly (6,000 images, 2 epochs: about 97% accurate)."""
    config = TrainConfig(epochs=2, n_train=6000, n_test=1000, validation_fraction=0.0, seed=1)
    splits = data.splits_for(raw, config)
    run = train.train(config, splits, print_fn=None)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    run.model.save(path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return load_model(model_path)


def write(array_or_image, path):
    im = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    im.save(path)
    return path


def digits_of(results):
    return np.array([r.digit for r in results])


@pytest.mark.slow
def test_test_set_digits_as_files_get_the_array_paths_predictions(raw, model, tmp_path):
    x = raw.x_test[:N]
    array_path = predict_proba(model, data.normalise(x)).argmax(1)
    plain = [write(x[i], tmp_path / f"d{i}.png") for i in range(N)]
    inverted = [write(255 - x[i], tmp_path / f"inv{i}.png") for i in range(N)]
    # scaled 3x, dark ink on a light, off-white colour page of another shape, off centre
    padded = []
    for i in range(N):
        big = Image.fromarray(255 - x[i]).resize((84, 84), Image.Resampling.BILINEAR)
        page = Image.new("RGB", (160, 120), (250, 245, 235))
        page.paste(Image.merge("RGB", [big] * 3), (10, 30))
        padded.append(write(page, tmp_path / f"pad{i}.jpg" if i % 2 else tmp_path / f"pad{i}.png"))
    from_files = digits_of(predict.predict_files(model, plain))
    agree = np.mean(from_files == array_path)
    assert agree >= 0.995, f"PNG path agrees with the array path on {agree:.1%} of {N} digits"
    np.testing.assert_array_equal(digits_of(predict.predict_files(model, inverted)), from_files)
    agree_padded = np.mean(digits_of(predict.predict_files(model, padded)) == from_files)
    assert agree_padded >= 0.95, f"scaled/padded/colour copies agree on {agree_padded:.1%}"


def test_to_mnist_centres_a_20_pixel_digit_by_its_centre_of_mass():
    page = np.full((300, 200), 255, dtype=np.uint8)
    page[40:240, 60:100] = 0  # a dark bar, 200 x 40 pixels, off centre on white paper
    out = predict.to_mnist(Image.fromarray(page))[..., 0]
    assert out.shape == (28, 28) and out.dtype == np.float32
    rows, cols = np.flatnonzero(out.max(1) > 0.5), np.flatnonzero(out.max(0) > 0.5)
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 == 4  # longer side 20 px, aspect kept
    cy, cx = np.array(np.nonzero(out)).mean(axis=1)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert out[0].max() == 0 and out.max() == pytest.approx(1.0, abs=0.02)  # white digit on black


@pytest.mark.slow
def test_digits_drawn_with_fonts_are_mostly_recognised(model, tmp_path):
    pages, labels, fonts = predict.font_digits()
    assert len(pages) == 60 and len(set(fonts)) == 6 and list(labels[:10]) == list(range(10))
    paths = [write(page, tmp_path / f"font{i}.png") for i, page in enumerate(pages)]
    rate = np.mean(digits_of(predict.predict_files(model, paths)) == labels)
    print(f"font digits recognised: {rate:.0%} of {len(labels)}")
    assert rate >= 0.6, f"only {rate:.0%} of {len(labels)} font digits recognised"


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 256, (100, 100), dtype=np.uint8)
    (tmp_path / "cut.png").write_bytes(write(noise, tmp_path / "x.png").read_bytes()[:2000])
    write(np.full((40, 40), 200, np.uint8), tmp_path / "blank.png")
    Image.new("1", (12000, 10000)).save(tmp_path / "huge.png")
    cases = {
        "missing.png": "no such file",
        "notes.txt": "not an image file",
        "empty.png": "the file is empty",
        "cut.png": "damaged or truncated",
        "huge.png": "more than this tool reads",
    }
    for name, message in cases.items():
        with pytest.raises(predict.ImageError, match=message):
            predict.load_image(tmp_path / name)
    with pytest.raises(predict.ImageError, match="the image is blank"):
        predict.to_mnist(predict.load_image(tmp_path / "blank.png"))


@pytest.mark.slow
def test_cli_reports_every_file_then_fails_if_any_failed(raw, model_path, tmp_path, capsys, monkeypatch):
    good = [write(raw.x_test[i], tmp_path / f"d{i}.png") for i in range(3)]
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert main(["predict", *map(str, good), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all("probability" in line for line in out)
    assert main(["predict", str(good[0]), str(bad), str(good[1]), "--model", str(model_path), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert rows[1]["path"] == str(bad) and "not an image" in rows[1]["error"]
    assert rows[0]["digit"] == int(np.argmax(rows[0]["probabilities"])) and len(rows[0]["probabilities"]) == 10
    assert main(["predict", str(good[0]), "--model", str(tmp_path / "none.keras")]) == 2
    assert "no such model file" in capsys.readouterr().err
    # without --model: the report's shipped network, as its metrics name it (here, a checkout of our own)
    root = tmp_path / "checkout"
    shipped = root / "reports" / "runs" / "abc" / "model.keras"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(model_path.read_bytes())
    _metrics(root, {"final": {"model_paths": ["reports/runs/abc/model.keras"]}})
    monkeypatch.setattr(paths, "PROJECT_ROOT", root)
    assert main(["predict", str(good[0]), "--model", str(model_path), "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert main(["predict", str(good[0]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == given
    shipped.unlink()
    assert main(["predict", str(good[0])]) == 2
    assert "the report's final network" in capsys.readouterr().err
    import keras  # a Keras model, but of colour images: named as such, not a shape error from deep in Keras

    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(
        tmp_path / "cifar.keras"
    )
    assert main(["evaluate", "--model", str(tmp_path / "cifar.keras"), "--n-test", "10"]) == 2
    assert "not an MNIST classifier: it takes inputs of shape (32, 32, 3)" in capsys.readouterr().err


def ring(size=200, stroke=8, ink=0, paper=255):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    page = np.full((size, size), paper, dtype=np.uint8)
    page[np.abs(r - size / 3) < stroke / 2] = ink
    return page


def transparent_palette():
    im = Image.fromarray(ring()).convert("P")
    im.info["transparency"] = im.getpixel((0, 0))  # the paper's palette entry is transparent
    return im


def centred_ring_ok(out):
    out = out[..., 0]
    assert out.max() == pytest.approx(1.0, abs=0.02)
    rows = np.flatnonzero(out.max(1) > 0.3)
    assert 18 <= rows[-1] - rows[0] + 1 <= 21 and out[14, 14] < 0.2  # a 20 px ring with a hole


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Image.fromarray(ring()), id="grey-dark-on-white"),
        pytest.param(lambda: Image.fromarray(ring(ink=25, paper=115)), id="dark-on-grey-paper"),
        pytest.param(lambda: Image.fromarray(ring(ink=255, paper=0)), id="white-on-black"),
        pytest.param(lambda: Image.fromarray(ring(1000, 8)), id="thin-stroke-shrunk-a-lot"),
        pytest.param(lambda: Image.fromarray(ring().astype(np.uint16) * 200), id="16-bit"),
        pytest.param(lambda: Image.fromarray(ring().astype(np.float32) / 255, "F"), id="float"),
        pytest.param(
            lambda: Image.merge(
                "RGBA", [Image.fromarray(ring(ink=255, paper=255))] * 3 + [Image.fromarray(255 - ring())]
            ),
            id="white-ink-on-transparent",
        ),
        pytest.param(lambda: transparent_palette(), id="palette-with-transparent-paper"),
        pytest.param(lambda: Image.fromarray(np.stack([ring(ink=200, paper=30)] * 3, -1)).convert("CMYK"), id="cmyk"),
    ],
)
def test_preprocessing_handles_odd_images(make, tmp_path):
    im = make()
    suffix = ".jpg" if im.mode == "CMYK" else ".tif" if im.mode == "F" else ".png"
    path = tmp_path / f"img{suffix}"
    im.save(path)
    centred_ring_ok(predict.to_mnist(predict.load_image(path)))


def test_noise_on_paper_is_not_a_digit():
    rng = np.random.default_rng(0)
    page = np.full((300, 300), 230, dtype=np.uint8)
    specks = rng.integers(0, 300, size=(40, 2))
    page[specks[:, 0], specks[:, 1]] = 20  # single dark pixels: dust, not a digit
    with pytest.raises(predict.ImageError, match="only specks"):
        predict.to_mnist(Image.fromarray(page))


def _metrics(root, content):
    """``root``'s notebook 03 metrics, as ``predict.DEFAULT_FROM`` names them, holding ``content``."""
    path = root / predict.DEFAULT_FROM[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_default_model_is_the_reports_first_final_network(tmp_path, monkeypatch):
    assert predict.DEFAULT_FROM == ("reports/03-beyond-the-seed.metrics.json", ("final", "model_paths", 0))
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)  # a checkout of our own: never the committed report
    first, second = (tmp_path / "reports" / "runs" / k / "model.keras" for k in ("a1", "b2"))
    for path in (first, second):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"a model")
    # the metrics name paths relative to the project root (as the notebook writes them), the first seed first
    _metrics(
        tmp_path,
        {"final": {"seeds": [0, 1], "model_paths": ["reports/runs/a1/model.keras", "reports/runs/b2/model.keras"]}},
    )
    assert predict.default_model() == first
    _metrics(tmp_path, {"final": {"model_paths": [str(second)]}})  # an absolute path as it is
    assert predict.default_model() == second


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "FileNotFoundError"),  # no metrics file at all
        ("{not json", "JSONDecodeError"),
        ({"final": {"seeds": [0, 1]}}, "KeyError: 'model_paths'"),  # the old format, or another notebook's
        ({"tuned": {}}, "KeyError: 'final'"),
        ({"final": {"model_paths": []}}, "IndexError"),
        ({"final": {"model_paths": [None]}}, "TypeError"),
        ({"final": None}, "TypeError"),
    ],
)
def test_metrics_that_do_not_name_the_network_give_a_clear_error(tmp_path, monkeypatch, content, why):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    if content is not None:
        _metrics(tmp_path, content)
    with pytest.raises(FileNotFoundError) as e:
        predict.default_model()
    message = str(e.value)
    assert message.startswith(f"{tmp_path / predict.DEFAULT_FROM[0]} does not name the report's final network ({why}")
    assert message.endswith("restore it with `git checkout -- reports/`, or give a model with --model")


def test_a_named_network_that_is_missing_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    _metrics(tmp_path, {"final": {"model_paths": ["reports/runs/gone/model.keras"]}})
    with pytest.raises(
        FileNotFoundError,
        match=r"the report's final network .*reports/runs/gone/model.keras is "
        r"missing: restore it with `git checkout -- .*reports/runs/gone`, or "
        r"give a model with --model",
    ):
        predict.default_model()


def test_predict_without_a_model_or_a_report_says_so_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, "DEFAULT_FROM", (str(tmp_path / "none.metrics.json"), ("final", "model_paths", 0)))
    image = write(np.zeros((28, 28), np.uint8), tmp_path / "d.png")
    assert main(["predict", str(image)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'none.metrics.json'} does not name the report's final network")
    assert "give a model with --model" in err and "Traceback" not in err


def test_font_check_counts_what_the_model_recognises_by_font():
    class Reads:  # a "model" that reads each page's digit from the font check's own order: all right, then 7s
        def __init__(self, labels, always=None):
            self.labels, self.always = labels, always

        def predict(self, images, batch_size=None, verbose=0):
            digits = np.full(len(images), self.always) if self.always is not None else self.labels
            return np.eye(10)[digits]

    _, labels, names = predict.font_digits()
    everything = predict.font_check(Reads(labels))
    assert everything["n"] == len(labels) == 10 * len(set(names)) and everything["rate"] == 1.0
    assert everything["by_font"] == {name: 10 for name in dict.fromkeys(names)}
    sevens = predict.font_check(Reads(labels, always=7))
    assert sevens["recognised"] == len(set(names)) and all(v == 1 for v in sevens["by_font"].values())
