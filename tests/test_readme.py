"""The parameter reference, notebooks/README.md: generated whole from the notebooks' `parameters` cells
(papermill reads each parameter's default and the help its trailing comment gives), committed as
generated, and linked from the main README."""

import re
import subprocess
import sys

import papermill as pm
import pytest
from conftest import write_notebook

from mnist_report.paths import PROJECT_ROOT
from mnist_report.reporting import readme as readme_module
from mnist_report.reporting.metrics import MetricsError
from mnist_report.reporting.readme import PARAMETERS_PAGE, markers, parameters_page, parameters_reference, update_readme

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9]*.ipynb"))
PAGE = PROJECT_ROOT / "notebooks" / PARAMETERS_PAGE
HEADING = re.compile(r"^## \[`([^`]+)`\]\(([^)]+)\)$")
ROW = re.compile(r"^\| `(\w+)` \| `(.*)` \| (.*) \|$")


def sections(markdown: str) -> dict[str, dict[str, tuple[str, str]]]:
    """The rendered reference read back: {notebook stem: {parameter: (default, help)}}; each heading
    links to its notebook, relative to the page (which sits beside the notebooks)."""
    found, current = {}, None
    for line in markdown.splitlines():
        if heading := HEADING.match(line):
            stem, link = heading.groups()
            assert link == f"{stem}.ipynb", f"{stem}'s heading links to {link}"
            current = found.setdefault(stem, {})
        elif row := ROW.match(line):
            assert current is not None, f"a parameter row before any notebook's heading: {line}"
            name, default, meaning = row.groups()
            assert name not in current, f"{name} listed twice"
            current[name] = (default, meaning.replace("\\|", "|"))
    return found


@pytest.fixture(scope="module")
def page() -> str:
    return parameters_page()


def test_the_page_lists_every_parameter_of_every_notebook_with_its_default_and_help(page):
    tables = sections(page)
    assert NOTEBOOKS and set(tables) == {nb.stem for nb in NOTEBOOKS}
    for nb in NOTEBOOKS:
        params = pm.inspect_notebook(str(nb))
        assert params, f"{nb.name}: papermill finds no parameters"
        assert list(tables[nb.stem]) == list(params), f"{nb.name}: the table's parameters differ from the cell's"
        for name, p in params.items():
            default, meaning = tables[nb.stem][name]
            assert default == p["default"], f"{nb.name}: {name}'s default"
            assert p["help"].strip(), f"{nb.name}: {name} has no help (a trailing comment in the parameters cell)"
            assert meaning == " ".join(p["help"].split()), f"{nb.name}: {name}'s help"


def test_the_tables_show_the_full_size_defaults(page):
    tables = sections(page)
    assert tables["01-seed-reproduction"]["epochs"][0] == "10"
    assert tables["01-seed-reproduction"]["seed"][0] == "42"
    assert tables["01-seed-reproduction"]["precision"][0] == '"float32"'
    assert tables["02-multi-seed-study"]["n_seeds"][0] == "10"
    assert tables["03-beyond-the-seed"]["max_trials"][0] == "20"


def test_the_page_says_how_it_is_made_and_links_back(page):
    header = page.split("\n## ", 1)[0]
    assert header.startswith("# Notebook parameters\n")
    assert "`python -m mnist_report readme`" in header and "`make report`" in header
    assert "do not edit" in header and "`parameters`" in header
    assert "](../README.md#other-parameters)" in header
    assert page.endswith(parameters_reference() + "\n")


def test_the_committed_page_is_the_one_generated_now(page):
    assert PAGE.is_file(), "notebooks/README.md is missing: run `python -m mnist_report readme`"
    assert PAGE.read_text() == page, "notebooks/README.md is stale: run `python -m mnist_report readme`"


def test_the_main_readme_links_to_the_page_and_no_longer_holds_the_tables():
    readme = (PROJECT_ROOT / "README.md").read_text()
    other = readme.split("## Other parameters\n", 1)[1].split("\n## ", 1)[0]
    assert "](notebooks/README.md)" in other, "README's Other parameters section does not link to the page"
    assert "make run NB=" in other and "PARAMS=" in other
    assert "parameters:start" not in readme
    assert not any(ROW.match(line) for line in readme.splitlines()), "a parameter table left in the README"


def test_a_help_with_a_pipe_stays_in_its_cell_and_a_missing_help_leaves_it_empty(tmp_path):
    write_notebook(tmp_path / "01-tiny.ipynb", 'alpha = 3  # either | or\nbeta = "x"\n', "print(alpha)")
    write_notebook(tmp_path / "notes.ipynb", "gamma = 1  # not a numbered notebook")
    markdown = parameters_reference(tmp_path)
    assert "gamma" not in markdown
    rows = [line for line in markdown.splitlines() if ROW.match(line)]
    assert rows == ["| `alpha` | `3` | either \\| or |", '| `beta` | `"x"` |  |']
    assert sections(markdown) == {"01-tiny": {"alpha": ("3", "either | or"), "beta": ('"x"', "")}}


def test_update_readme_writes_the_page_and_rewrites_only_the_readmes_blocks(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "01-tiny.ipynb", "alpha = 3  # how many\n")
    reports = tmp_path / "reports"
    new = {"results": "new table"}
    monkeypatch.setattr(readme_module, "blocks", lambda where, left: new if where == reports else {})
    readme = tmp_path / "README.md"
    start, end = markers("results")
    readme.write_text(f"# Title\n\nBefore.\n\n{start}\nold table\n{end}\n\nAfter.\n")
    assert update_readme(readme, reports=reports, notebooks=notebooks) == readme
    assert readme.read_text() == f"# Title\n\nBefore.\n\n{start}\nnew table\n{end}\n\nAfter.\n"
    page = (notebooks / "README.md").read_text()
    assert page == parameters_page(notebooks) and "| `alpha` | `3` | how many |" in page
    assert sorted(p.name for p in notebooks.iterdir()) == ["01-tiny.ipynb", "README.md"]  # no temporary left

    # a README without a block that has a source: an error, and neither file is written
    (notebooks / "README.md").write_text("old page\n")
    readme.write_text("# A README without the block\n")
    with pytest.raises(ValueError, match="no results block"):
        update_readme(readme, reports=reports, notebooks=notebooks)
    assert (notebooks / "README.md").read_text() == "old page\n"
    assert readme.read_text() == "# A README without the block\n"


def test_a_block_whose_metrics_were_made_by_older_code_is_left_as_it_is_and_said(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "03-beyond-the-seed.metrics.json").write_text('{"notebook": "03-beyond-the-seed"}')
    start, end = markers("beyond")
    readme = tmp_path / "README.md"
    readme.write_text(f"{start}\nthe committed table\n{end}\n")
    said = []
    update_readme(readme, reports=reports, notebooks=tmp_path / "none", print_fn=said.append)
    assert readme.read_text() == f"{start}\nthe committed table\n{end}\n"
    assert len(said) == 1 and said[0].startswith("README beyond block left as it is: 03-beyond-the-seed's metrics")
    assert said[0].endswith("run `make report`")
    with pytest.raises(MetricsError):  # asked for without a place to say what was left: an error
        readme_module.blocks(reports)


def test_without_notebooks_no_page_is_written(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    update_readme(readme, reports=tmp_path / "no-reports", notebooks=tmp_path / "no-notebooks")
    assert readme.read_text() == "# Title\n" and not (tmp_path / "no-notebooks").exists()


def test_importing_the_readme_module_imports_neither_papermill_nor_tensorflow():
    code = "import sys, mnist_report.reporting.readme; print(sorted({'papermill', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"


def test_the_commands_that_train_nothing_and_image_preparation_import_no_tensorflow():
    """`check-report` and `readme` answer in a second; `predict` loads TensorFlow only to run the model."""
    code = (
        "import sys, mnist_report.__main__, mnist_report.reporting.provenance, mnist_report.machine, "
        "mnist_report.predict; "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "False"


def test_the_training_row_adds_the_numbers_the_declaration_marks_as_timings(monkeypatch):
    from typing import Annotated, Any

    from typing_extensions import TypedDict

    from mnist_report.reporting import metrics as declared

    class Run(TypedDict):
        train_seconds: declared.Seconds
        accuracy: declared.Acc

    class Notebook(TypedDict):
        runs: list[Run]
        monitor_train_seconds: declared.Seconds
        cost: Annotated[dict[str, Any], declared.Kind.STATISTIC]  # a mean of the others: not added again
        trained_on: list[str]

    monkeypatch.setattr(declared, "NOTEBOOKS", {"x": Notebook})
    data = {
        "runs": [{"train_seconds": 1800.0, "accuracy": 0.99}, {"train_seconds": 3600.0, "accuracy": 0.98}],
        "monitor_train_seconds": 1800.0,
        "cost": {"train_seconds": 2700.0},
        "trained_on": ["AMD EPYC"],
    }
    name, text = readme_module.training_time("x", data)
    assert (name, text) == (
        "Training",
        "2.0 h of single-run training in all, on AMD EPYC",
    )
