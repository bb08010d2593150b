"""The report site (mnist_report/reporting/site.py): built from the committed reports/ into a temporary
folder, every page present, every image, link and anchor resolving inside the site, nothing fetched
from elsewhere; a failed build leaves the previous site as it was."""

from __future__ import annotations

import re
import shutil
from html import unescape as html_unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from mnist_report.reporting import site

# sphinx-book-theme 1.4 under Sphinx 9 uses an API that Sphinx 11 removes: theirs to change
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")
REPORTS = site.REPORTS
NOTEBOOKS = [p.stem for p in site.notebooks(REPORTS)]
PAGES = ["index", *NOTEBOOKS, site.APPENDIX.stem, "search"]
WARNINGS: list[str] = []  # what the module's build said


class Page(HTMLParser):
    """The ids of a page, and the URLs it refers to: (tag, attribute, value)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for name in ("id", "name"):  # an anchor is an element's id (or an <a name>)
            if attrs.get(name) and (name == "id" or tag == "a"):
                self.ids.add(attrs[name])
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.refs.append((tag, name, attrs[name]))


def external(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https", "mailto", "javascript", "data")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return site.build(REPORTS, tmp_path_factory.mktemp("site") / "site", warn=WARNINGS.append)


@pytest.fixture(scope="module")
def pages(built) -> dict[Path, Page]:
    return {path: Page(path.read_text(encoding="utf-8")) for path in sorted(built.rglob("*.html"))}


def test_the_committed_report_has_notebooks():
    assert len(NOTEBOOKS) >= 3 and NOTEBOOKS == sorted(NOTEBOOKS), NOTEBOOKS


@pytest.mark.slow  # Sphinx builds five pages: about 3 s
def test_every_page_exists(built):
    for name in PAGES:
        assert (built / f"{name}.html").is_file(), f"{name}.html missing; the site has {sorted(built.iterdir())}"
    assert (built / "searchindex.js").is_file()
    assert (built / "searchindex.js").stat().st_size > 1000


@pytest.mark.slow
def test_sphinx_has_no_warnings(built):
    assert not [w for w in WARNINGS if w.startswith("sphinx:")], "\n".join(WARNINGS)


@pytest.mark.slow
def test_no_build_caches_are_left(built):
    for name in (".buildinfo", ".doctrees", "_sources", "objects.inv", "jupyter_execute"):
        assert not (built / name).exists(), name
    assert not list(built.rglob("*.map"))
    assert not list((built / "_static").rglob("*.html")), "the themes' Jinja macros"


@pytest.mark.slow
def test_landing_page_has_the_results_tables_and_links_every_page(built, pages):
    index = pages[built / "index.html"]
    text = (built / "index.html").read_text()
    from mnist_report.reporting import provenance, readme

    rendered = readme.blocks(REPORTS, {})  # a notebook whose regeneration is owed has no table yet
    current = [name for name, why in provenance.check(REPORTS).items() if not why]
    blocks = {"01-seed-reproduction": "results", "02-multi-seed-study": "study", "03-beyond-the-seed": "beyond"}
    assert {blocks[name] for name in current} <= set(rendered), "a current notebook's table is missing"
    assert text.count("<table") >= len(rendered) and ("table" in index.tags or not rendered), "the results tables"
    for name in rendered:
        assert site.HEADINGS.get(name, name) in text
    linked = {urlsplit(v).path for _, _, v in index.refs}
    for name in [*NOTEBOOKS, site.APPENDIX.stem]:
        assert f"{name}.html" in linked, f"the landing page does not link {name}.html"


@pytest.mark.slow
def test_every_image_link_and_anchor_resolves(built, pages):
    broken = []
    for path, page in pages.items():
        for tag, attr, url in page.refs:
            if not url or url.startswith("#") or external(url):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve()
            where = f"{path.relative_to(built)}: <{tag} {attr}={url!r}>"
            if not target.is_relative_to(built.resolve()):
                broken.append(f"{where} leaves the site")
            elif target.is_dir() or not target.is_file():
                broken.append(f"{where}: no such file")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else Page(target.read_text()).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where}: no id {parts.fragment!r} in {target.name}")
    assert not broken, "\n".join(broken)


@pytest.mark.slow
def test_every_image_shows(built, pages):
    images = [(path, v) for path, page in pages.items() for tag, attr, v in page.refs if tag == "img"]
    assert len([1 for path, _ in images if path.stem in NOTEBOOKS]) >= 15, "the notebooks' figures"
    for path, src in images:
        assert not external(src) or src.startswith("data:"), f"{path.name}: image from elsewhere: {src}"


@pytest.mark.slow
def test_nothing_is_fetched_from_elsewhere(built, pages):
    """Offline: no script, style sheet or image comes from another host."""
    for path, page in pages.items():
        for tag, attr, url in page.refs:
            if tag in ("script", "link", "img", "iframe") and urlsplit(url).scheme in ("http", "https"):
                raise AssertionError(f"{path.name}: <{tag} {attr}={url}> needs the network")


@pytest.mark.slow
def test_two_builds_give_the_same_files(built, tmp_path):
    again = site.build(REPORTS, tmp_path / "site", warn=lambda _: None)
    files = sorted(p.relative_to(built) for p in built.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    differ = [str(f) for f in files if (built / f).read_bytes() != (again / f).read_bytes()]
    assert not differ, differ


def test_a_failed_build_leaves_the_previous_site(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    for path in site.notebooks(REPORTS):
        shutil.copyfile(path, reports / path.name)
    broken = reports / f"{NOTEBOOKS[1]}.ipynb"
    broken.write_text(broken.read_text()[:5000])  # cut short: not JSON
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("the previous site")
    with pytest.raises(site.SiteError, match=rf"{broken.name} is not a readable notebook"):
        site.build(reports, out, warn=lambda _: None)
    assert [p.name for p in out.iterdir()] == ["index.html"]
    assert (out / "index.html").read_text() == "the previous site"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports", "site"], "a half-built folder was left"


def test_no_notebooks_is_an_error(tmp_path):
    with pytest.raises(site.SiteError, match="no executed notebooks"):
        site.build(tmp_path, tmp_path / "site", warn=lambda _: None)
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
def test_each_notebook_page_is_named_by_its_notebooks_title(built):
    for name in NOTEBOOKS:
        nb = nbformat.read(REPORTS / f"{name}.ipynb", as_version=4)
        title = nb.cells[0].source.splitlines()[0].removeprefix("# ")
        html = (built / f"{name}.html").read_text(encoding="utf-8")
        shown = re.search(r"<title>(.*?) &#8212;", html).group(1)
        assert html_unescape(shown) == title.replace("'", "\u2019"), f"{name}: page named {shown!r}"
