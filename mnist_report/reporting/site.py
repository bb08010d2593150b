"""The report as one site: a landing page, the executed notebooks and an appendix, built offline.

``build()`` assembles a Sphinx source folder in a temporary directory (``conf.py`` written here, the
landing page ``index.md`` generated from the metrics, copies of the executed ``reports/NN-*.ipynb`` and
of ``notebooks/how-this-report-is-made.md``), runs Sphinx in this process with MyST-NB and the Sphinx
Book Theme, and never executes a cell (``nb_execution_mode = "off"``). The output replaces
``reports/site/`` only once it is whole: a failed build leaves the previous site as it was. Build
caches (``.buildinfo``, doctrees, ``objects.inv``, copied sources) are left out, so two builds of the
same inputs give the same files. Nothing is fetched: every script, style and font is in the site, which
works opened from disk (file://) and over HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from mnist_report.paths import PROJECT_ROOT, shown

REPORTS = PROJECT_ROOT / "reports"
SITE = REPORTS / "site"
APPENDIX = PROJECT_ROOT / "notebooks" / "how-this-report-is-made.md"
NOTEBOOKS = "[0-9][0-9]-*.ipynb"  # the executed notebooks, in order

SITE_TITLE = "The MNIST ConvNet report"  # the sidebar's, and each browser tab's
TITLE = "Does the Keras MNIST ConvNet reach 99.25%?"  # the landing page's
QUESTION = (
    "The classic Keras example network for MNIST, two small convolutions and a dense layer, is said to "
    "reach **99.25% test accuracy**, with **4<->9** and **3<->8** as its most common confusions. "
    "Does it, and how far can the same data take a better network?"
)
INTRODUCTION = (
    "This report trains that network, measures it over many seeds, tunes it, trains a stronger network and "
    "asks what each part of it is worth. In this version the test set scores each network once, after "
    "everything is fixed; earlier versions of the report had already scored the better network on it (its "
    "base, then final networks of the same configurations and seeds, trained again for this version). Every "
    "number and "
    "verdict on these pages is computed by code from the trained runs, on MNIST files whose checksums are "
    "verified on every load; none is typed. The notebooks are shown as they were executed."
)
# A heading for each of readme.blocks()'s tables; a block not named here is headed by its name.
HEADINGS = {
    "results": "The baseline network, one run",
    "study": "The claimed setup, many seeds",
    "beyond": "Beyond the baseline",
}
# The findings: verdict sentences the notebooks wrote into their metrics (a lead, the file, the path of keys,
# how many of its sentences), in order; one that is missing is left out.
FINDINGS = (
    ("**One run of the baseline network.** ", "01-seed-reproduction.metrics.json", ("claims", "accuracy_verdict"), 1),
    ("", "02-multi-seed-study.metrics.json", ("accuracy_verdict", "text"), 2),
    ("", "02-multi-seed-study.metrics.json", ("pairs", "text"), 1),
    ("", "03-beyond-the-seed.metrics.json", ("final", "text"), 1),
    (
        "**Final vs earlier better network.** ",
        "03-beyond-the-seed.metrics.json",
        ("mcnemar_earlier_better", 0, "text"),
        1,
    ),
    ("**The ablation.** ", "03-beyond-the-seed.metrics.json", ("ablation", "text"), 3),
)

CONF = """\
# Written by mnist_report/reporting/site.py for each build; do not edit.
project = {title!r}
html_title = {title!r}
html_short_title = {title!r}
author = ""
copyright = ""
language = "en"
extensions = ["myst_nb"]
exclude_patterns = []
nb_execution_mode = "off"  # the notebooks are shown as executed; building runs no cell
nb_ipywidgets_js = {{}}  # no widget scripts from a CDN: the site is offline
nb_merge_streams = True
myst_heading_anchors = 3
html_theme = "sphinx_book_theme"
html_theme_options = {{
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "search_bar_text": "Search the report",
    "navbar_persistent": [],  # the sidebar has the search field; PyData's default adds a top bar for another
}}
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_copy_source = False  # no _sources/: the notebooks are in reports/ beside the site
html_show_sourcelink = False
html_show_sphinx = False
html_show_copyright = False
html_last_updated_fmt = None
html_permalinks_icon = "#"
"""
# Wide tables (the benchmark) scroll inside the page rather than widen it; long cells wrap.
CSS = """\
.bd-article table { font-size: 0.9em; }
.bd-article table td, .bd-article table th { vertical-align: top; }
.bd-article table:has(th:nth-child(6)) { font-size: 0.75em; }
.bd-article .cell_output table { margin-bottom: 1em; }
.bd-article .cell_output img { max-width: 100%; height: auto; }
"""
CACHES = (
    ".buildinfo",
    ".doctrees",
    "objects.inv",
    "_sources",
    ".jupyter_cache",
    "jupyter_execute",
    "_static/locales",
)  # the last: the theme's translations, read when building, never by a browser
# Never read by a browser: source maps (for developer tools; 3.5 MB of the theme's 6.6), and the themes'
# Jinja macros that Sphinx copies with their static files (they are templates, not pages).
UNREAD = ("*.map", "_static/**/*.html")


class SiteError(RuntimeError):
    """The site could not be built; the previous one is left in place."""


def notebooks(reports: Path = REPORTS) -> list[Path]:
    """The executed notebooks of the report, in order (``NN-name.ipynb``; not a failed execution's
    ``NN-name.failed.ipynb``)."""
    return sorted(p for p in Path(reports).glob(NOTEBOOKS) if "." not in p.stem)


def tables(reports: Path = REPORTS, warn: Callable[[str], None] = print) -> dict[str, str]:
    """The results tables, name -> Markdown (``readme.blocks``); one whose metrics do not follow their
    declaration (made by older code: its regeneration owed) is left out, and ``warn`` says so."""
    from mnist_report.reporting import readme

    left: dict[str, str] = {}
    out = readme.blocks(Path(reports), left)
    for name, why in left.items():
        warn(f"site: the {name} table is left out: {why}")
    return out


def _sentences(text: str, n: int) -> str:
    """The first ``n`` sentences of ``text`` (a sentence ends at '.' before a space and a capital)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z*])", " ".join(text.split()))
    return " ".join(parts[:n])


def findings(reports: Path = REPORTS) -> list[str]:
    """The report's verdicts in a few sentences, from the metrics the notebooks wrote (those present)."""
    out = []
    for lead, file, keys, sentences in FINDINGS:
        try:
            value = json.loads((Path(reports) / file).read_text(encoding="utf-8"))
            for k in keys:
                value = value[k]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, str) and value.strip():
            out.append(lead + _sentences(value, sentences))
    return out


def landing_page(
    reports: Path = REPORTS,
    pages: list[str] | None = None,
    appendix: str | None = None,
    warn: Callable[[str], None] = print,
) -> str:
    """index.md: the question, the findings, the results tables, and the table of contents."""
    pages = [p.stem for p in notebooks(reports)] if pages is None else pages
    parts = [f"# {TITLE}", QUESTION, INTRODUCTION]
    found = findings(reports)
    if found:
        parts += ["## Findings", "\n".join(f"- {f}" for f in found)]
    parts += ["## The notebooks", "\n".join(f"{i}. {{doc}}`{page}`" for i, page in enumerate(pages, 1))]
    if appendix:
        parts.append(f"The appendix, {{doc}}`{appendix}`, says how the report is made and how to reproduce it.")
    blocks = tables(reports, warn)
    if blocks:
        parts.append("## Results")
        parts += [f"### {HEADINGS.get(name, name)}\n\n{markdown}" for name, markdown in blocks.items()]
    # the sidebar's navigation, in two groups; the lists above are the page's own
    parts.append("\n".join(["```{toctree}", ":caption: Notebooks", ":hidden:", "", *pages, "```"]))
    if appendix:
        parts.append("\n".join(["```{toctree}", ":caption: Appendix", ":hidden:", "", appendix, "```"]))
    return "\n\n".join(parts) + "\n"


def _check_notebook(path: Path) -> None:
    """A ``SiteError`` naming the file if it is not a readable notebook."""
    import nbformat

    try:
        nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    except Exception as e:  # noqa: BLE001  (JSON, schema or encoding: each is a broken notebook)
        raise SiteError(f"{shown(path)} is not a readable notebook: {type(e).__name__}: {e}"[:2000]) from e


def assemble(
    source: Path, reports: Path = REPORTS, appendix: Path = APPENDIX, warn: Callable[[str], None] = print
) -> Path:
    """Write the Sphinx source folder ``source``: conf.py, index.md, the notebooks and the appendix."""
    found = notebooks(reports)
    if not found:
        raise SiteError(f"no executed notebooks ({NOTEBOOKS}) in {shown(reports)}: run `make report`")
    source.mkdir(parents=True, exist_ok=True)
    for path in found:
        _check_notebook(path)
        shutil.copyfile(path, source / path.name)
    if appendix is not None and not Path(appendix).is_file():
        raise SiteError(f"the appendix {shown(appendix)} is missing")
    if appendix is not None:
        shutil.copyfile(appendix, source / Path(appendix).name)
    (source / "_static").mkdir(exist_ok=True)
    (source / "_static" / "site.css").write_text(CSS)
    (source / "conf.py").write_text(CONF.format(title=SITE_TITLE))
    stem = Path(appendix).stem if appendix is not None else None
    (source / "index.md").write_text(landing_page(reports, [p.stem for p in found], stem, warn))
    return source


def _sphinx(source: Path, html: Path, doctrees: Path) -> list[str]:
    """Run Sphinx's HTML builder in this process, quietly; its warnings, one per item."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    warnings = io.StringIO()
    try:
        with patch_docutils(source), docutils_namespace():
            app = Sphinx(
                str(source),
                str(source),
                str(html),
                str(doctrees),
                "html",
                status=None,
                warning=warnings,
                freshenv=True,
                verbosity=0,
            )
            app.build(force_all=True)
    except Exception as e:  # noqa: BLE001  (Sphinx's and its extensions' errors alike)
        raise SiteError(f"Sphinx failed: {type(e).__name__}: {e}\n{warnings.getvalue()}".strip()) from e
    if app.statuscode:
        raise SiteError(f"Sphinx failed (status {app.statuscode}):\n{warnings.getvalue()}".strip())
    text = warnings.getvalue().replace(str(source) + os.sep, "")
    return [w for w in re.split(r"\n(?=\S)", text.strip()) if w]


def _strip(html: Path) -> None:
    """Remove the build caches and the files only a rebuild or another Sphinx project reads."""
    for name in CACHES:
        path = html / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for pattern in UNREAD:
        for path in html.glob(pattern if "/" in pattern else f"**/{pattern}"):
            path.unlink()


def _replace(new: Path, out: Path) -> None:
    """Put the folder ``new`` at ``out`` (same filesystem): the previous ``out`` is moved aside, ``new``
    renamed into place, then the previous one deleted; if the rename fails the previous one is put back."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.rename(out, old / out.name)
    try:
        os.rename(new, out)
    except OSError:
        if old is not None:
            os.rename(old / out.name, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build(
    reports: Path = REPORTS,
    out: Path = SITE,
    *,
    appendix: Path | None = APPENDIX,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Build the report site from the executed notebooks in ``reports`` into ``out``, replacing it only
    when the build has succeeded (a ``SiteError`` otherwise, ``out`` untouched). Sphinx's warnings are
    passed to ``warn`` (default: printed to stderr). Returns ``out``."""
    warn = warn or (lambda line: print(line, file=sys.stderr))
    reports, out = Path(reports).resolve(), Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-report-site-") as tmp:
        source = assemble(Path(tmp) / "source", reports, appendix, warn)
        html = Path(tmp) / "build" / "html"
        for line in _sphinx(source, html, Path(tmp) / "build" / "doctrees"):
            warn(f"sphinx: {line}")
        _strip(html)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
        try:
            shutil.copytree(html, staging, dirs_exist_ok=True)  # and html's mode for mkdtemp's 0700
            _replace(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return out
