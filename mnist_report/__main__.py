"""The package's jobs from a shell:
``python -m mnist_report train|evaluate|predict|notebook|report|reproduce|readme|check-report``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys

from mnist_report.config import ARCHITECTURES, PRECISIONS, TrainConfig
from mnist_report.data import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_report", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a network (the baseline unless --architecture better) and save it")
    meaning = _field_comments()
    for f in dataclasses.fields(TrainConfig):
        # n_train, n_test, patience: None or an int; augment, batch_norm: true or false (bool("False") is True)
        kind = _int_or_none if f.default is None else _bool if isinstance(f.default, bool) else type(f.default)
        choices = {"precision": PRECISIONS, "architecture": ARCHITECTURES}.get(f.name)
        train.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=f.default,
            choices=choices,
            help=f"{meaning.get(f.name, '')} (default: {f.default})".lstrip(),
        )
    train.add_argument(
        "--save-model", required=True, metavar="PATH.keras", help="where to write the trained model (a .keras file)"
    )

    ev = sub.add_parser("evaluate", help="evaluate a saved model on the MNIST test set")
    ev.add_argument("--model", required=True, metavar="PATH.keras")
    ev.add_argument("--n-test", type=int, default=None, help="first N test images (default: all)")
    ev.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub.add_parser(
        "readme",
        help="rewrite the README's generated tables from reports/ and notebooks/README.md "
        "(the parameter reference) from the notebooks",
    )
    sub.add_parser("check-report", help="say whether reports/ is stale against the working tree, and why")
    rr = sub.add_parser("reproduce", help="execute every notebook again from nothing and compare every number")
    rr.add_argument("--out", default="reproduce", help="where to execute them (default: reproduce/, never reports/)")
    rr.add_argument("--reports", default="reports", help="the committed report to compare with (default: reports/)")
    rr.add_argument("--compare-only", action="store_true", help="compare what --out already holds; execute nothing")
    rr.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs an interrupted reproduction trained in OUT/cache (never the report's cache)",
    )
    rr.add_argument("--timeout", type=_seconds, help="seconds a single cell may run (default 86400, a day)")
    rp = sub.add_parser("report", help="execute exactly the stale notebooks into reports/, then update the README")
    rp.add_argument("--timeout", type=_seconds, help="seconds a single cell may run (default 86400, a day)")

    pr = sub.add_parser("predict", help="classify your own digit images (any size, colour, background)")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    pr.add_argument(
        "--model",
        metavar="PATH.keras",
        help="a trained model (default: the report's final network of notebook 03, seed 0, which "
        "ships with the repository: the report's better network, trained on shifted, rotated and zoomed "
        "digits, which photographs of digits resemble)",
    )
    pr.add_argument("--json", action="store_true", help="print machine-readable JSON, one object per image")

    nb = sub.add_parser("notebook", help="execute a notebook with papermill, parameters checked first")
    nb.add_argument("notebook", help="e.g. notebooks/01-seed-reproduction.ipynb")
    nb.add_argument("output", help="the executed notebook to write (replaced only if every cell succeeds)")
    nb.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter of the notebook's `parameters` cell (repeatable)",
    )
    nb.add_argument(
        "-y",
        "--yaml-parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "YAML"),
        help="a parameter given as YAML, for a dict or a list: -y variants '{recipe: {}, plain: {augment: false}}'",
    )
    nb.add_argument("--timeout", type=_seconds, help="seconds a single cell may run (default 86400, a day)")
    return parser


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false; got {text!r}")
    return text.lower() in ("true", "1", "yes")


def _int_or_none(text: str) -> int | None:
    try:
        return None if text == "None" else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or None; got {text!r}") from None


def _seconds(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds, at least 1; got {text!r}")
    return seconds


def _failure(e: BaseException) -> str:
    """An exception's message with its notes (notebooks.execute adds the kernel's last messages)."""
    return "\n".join([str(e), *getattr(e, "__notes__", [])])


def _field_comments() -> dict[str, str]:
    """Each ``TrainConfig`` field's meaning, from its comment in config.py (written there once)."""
    import inspect
    import re

    found, last = {}, None
    for line in inspect.getsource(TrainConfig).splitlines():
        field, more = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)", line), re.match(r"\s+#\s*(.+)", line)
        if field:
            last = field.group(1)
            found[last] = field.group(2)
        elif more and last:  # the comment goes on, on a line of its own
            found[last] += " " + more.group(1)
        else:
            last = None
    return {k: v.replace("%", "%%") for k, v in found.items()}  # argparse formats help with %


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command in ("notebook", "report", "reproduce"):
            return _notebook(args)
        if args.command == "check-report":
            return _check_report()
        if args.command == "predict":
            return _predict(args)
        if args.command == "readme":
            from mnist_report.reporting.readme import update_readme

            print(f"updated {update_readme()} and notebooks/README.md")
            return 0
        return _evaluate(args)
    except (ValueError, DataError, FileNotFoundError) as e:
        print(f"error: {_failure(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in train, evaluate or predict (notebooks say more: _notebook)
        print(f"INTERRUPTED: {args.command} did not finish; nothing was written", file=sys.stderr)
        return 130


_SIGNALLED: list[str] = []  # the signal that stopped the run, if one did


def _interrupted(signum, frame):
    _SIGNALLED.append(signal.Signals(signum).name)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _notebook(args) -> int:
    from mnist_report.reporting import runner as notebooks

    # papermill logs each cell's output (one line per epoch) through logging: show it as it comes
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # A closed terminal (SIGHUP) or a `kill` (SIGTERM) stops the run as Ctrl-C does, so that
    # notebooks.execute removes its half-written notebook and staged outputs before exiting.
    # A signal ignored when it starts (SIGHUP under `nohup make report`) stays ignored. The handlers are put
    # back afterwards, for a caller that goes on (a test, a notebook kernel).
    _SIGNALLED.clear()
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and signal.getsignal(getattr(signal, name)) is not signal.SIG_IGN:
            previous[name] = signal.signal(getattr(signal, name), _interrupted)
    try:
        return _run_notebooks(args, notebooks)
    finally:
        for name, handler in previous.items():  # None: a handler not set from Python, restored as the default
            signal.signal(getattr(signal, name), signal.SIG_DFL if handler is None else handler)


def _run_notebooks(args, notebooks) -> int:
    what = {"report": "the report", "reproduce": "the reproduction"}.get(args.command) or args.notebook
    timeout = args.timeout or notebooks.CELL_TIMEOUT
    stopped_by = None
    try:
        if args.command == "reproduce":
            from mnist_report.paths import from_root
            from mnist_report.reporting import reproduce

            return reproduce.main(from_root(args.reports), from_root(args.out), timeout, args.compare_only, args.resume)
        if args.command == "report":
            from mnist_report.reporting.readme import update_readme

            notebooks.build_report(timeout=timeout)
            print(f"updated {update_readme()} and notebooks/README.md")
            return 0
        import yaml

        params = {name: notebooks.parse_value(value) for name, value in args.parameter}
        for name, text in args.yaml_parameter:
            try:
                params[name] = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise ValueError(f"-y {name}: not YAML ({e})") from None
        out = notebooks.execute(args.notebook, args.output, params, timeout=timeout)
    except KeyboardInterrupt as e:
        stopped_by = e.args[0] if e.args else "SIGINT"
    except Exception as e:
        if _SIGNALLED:  # the signal reached the kernel first, and the runner saw it die
            stopped_by = _SIGNALLED[0]
        elif isinstance(e, RuntimeError):  # a cell failed or timed out, or the kernel died
            print(f"FAILED: {_failure(e)}", file=sys.stderr)
            return 1
        else:
            raise
    if stopped_by:
        # the kernel's client tasks end with "Kernel died" when the loop is torn down: not news here
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        print(
            f"INTERRUPTED ({stopped_by}): {what} did not finish; "
            "the notebook being executed and its figures and metrics were left as they were",
            file=sys.stderr,
        )
        return 130
    print(f"wrote {out}")
    return 0


def _train(args) -> int:
    from pathlib import Path

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    config = TrainConfig.from_params({k: getattr(args, k) for k in names})
    out = Path(args.save_model)
    if out.suffix != ".keras" or out.is_dir():
        raise ValueError(f"--save-model must be a file whose name ends in .keras; got {out}")
    # before training, not after it: the folder must be one that can be made and written to (it is made
    # only when the model is saved, so a run that fails or is interrupted leaves nothing behind)
    existing = next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"--save-model {out}: {existing} is not a folder this user can write to")
    # only now, the parameters checked: TensorFlow takes seconds to load
    from mnist_report import data
    from mnist_report.analysis.evaluate import evaluate
    from mnist_report.io import atomic_path
    from mnist_report.modeling import model as model_
    from mnist_report.modeling import train

    splits = data.splits_for(data.load_raw(), config)
    print(splits.describe())
    run = train.train(config, splits)
    ev = evaluate(splits.y_test, model_.predict_proba(run.model, splits.x_test))  # before saving: Ctrl-C saves nothing
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        run.model.save(tmp)
    print(
        f"saved {out} after {run.train_seconds:.0f} s of training; test accuracy {ev.accuracy:.2%} "
        f"({ev.n_errors} errors in {ev.n:,})"
    )
    return 0


def _check_report() -> int:
    """Exit status 1 if any notebook's report is stale."""
    from mnist_report.reporting import provenance

    stale = False
    for name, reasons in provenance.check().items():
        stale |= bool(reasons)
        print(f"{name}: " + (f"STALE: {'; '.join(reasons)}" if reasons else "up to date"))
    if stale:
        print("run `make report` to regenerate the stale notebooks", file=sys.stderr)
    return 1 if stale else 0


def _mnist_model(path):
    """A saved Keras model that takes MNIST images (28x28, one channel) and gives 10 classes."""
    from pathlib import Path

    if Path(path).is_dir():  # before TensorFlow is loaded
        model_file = Path(path) / "model.keras"
        raise ValueError(
            f"{path} is a folder; --model takes a model file"
            + (f", such as {model_file}" if model_file.is_file() else " (PATH.keras)")
        )
    from mnist_report.modeling import model as model_

    model = model_.load_model(path)
    shapes = (tuple(model.input_shape[1:]), tuple(model.output_shape[1:]))
    if shapes != ((28, 28, 1), (10,)):
        raise ValueError(
            f"{path} is a Keras model, but not an MNIST classifier: it takes inputs of shape "
            f"{shapes[0]} and gives {shapes[1]}, not (28, 28, 1) and 10 classes"
        )
    return model


def _predict(args) -> int:
    """Exit status 1 if any image could not be read, after reporting every one of them."""
    from mnist_report import predict

    model = _mnist_model(args.model or predict.default_model())
    results = predict.predict_files(model, args.images)
    for r in results:
        if args.json:
            print(json.dumps(dataclasses.asdict(r)))
        else:
            print(r.line(), file=sys.stderr if r.error else sys.stdout)
    return 1 if any(r.error for r in results) else 0


def _evaluate(args) -> int:
    from mnist_report import data
    from mnist_report.analysis.evaluate import evaluate
    from mnist_report.modeling.model import predict_proba

    if args.n_test is not None and not 1 <= args.n_test <= 10000:
        raise ValueError(f"--n-test must be in [1, 10000]; got {args.n_test}")
    model = _mnist_model(args.model)
    raw = data.load_raw()
    n = args.n_test or len(raw.y_test)
    ev = evaluate(raw.y_test[:n], predict_proba(model, data.normalise(raw.x_test[:n])))
    if args.json:
        print(
            json.dumps(
                {"model": str(args.model), "accuracy": ev.accuracy, "loss": ev.loss, "n": ev.n, "n_errors": ev.n_errors}
            )
        )
    else:
        print(f"{args.model}: test accuracy {ev.accuracy:.2%} ({ev.n_errors} errors in {ev.n:,}), loss {ev.loss:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
