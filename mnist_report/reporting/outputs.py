"""Where a notebook's outputs go: figures under ``<output_dir>/figures/``, metrics as JSON."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from mnist_report import machine
from mnist_report.analysis import plots
from mnist_report.io import write_json
from mnist_report.paths import PROJECT_ROOT, from_root, shown
from mnist_report.reporting import metrics as declared

INTERACTIVE = "interactive"  # reports/interactive/: where a notebook run by hand writes
STAGING_ENV = "MNIST_REPORT_STAGING"  # set by notebooks.execute: "<output dir>" + os.pathsep + "<staging dir>"


class Outputs:
    """The output files of one notebook, named after it (e.g. ``01-seed-reproduction``).

    When ``notebooks.execute`` runs the notebook, the files meant for its output directory are
    written to a staging directory instead, and moved into place only if every cell succeeds.
    """

    def __init__(self, output_dir: str | Path, name: str):
        self.dir = staged(from_root(output_dir))
        self.name = name
        self.figures_dir = self.dir / "figures"
        self.metrics_path = self.dir / f"{name}.metrics.json"

    def figure_path(self, key: str) -> Path:
        return self.figures_dir / f"{self.name}-{key}.png"

    def figure(self, fig: Figure, key: str) -> None:
        """Save ``fig`` as ``figures/<name>-<key>.png``; in a notebook, show that file. (The inline
        backend would draw the figure twice more, at the end of the cell: a second for a gallery of
        40 images, and the copy shown would not be the file.)"""
        path = plots.save(fig, self.figure_path(key))
        from IPython import get_ipython

        if get_ipython() is not None:
            from IPython.display import Image, display
            from matplotlib import pyplot as plt

            # alt: a description kept in the notebook (nbconvert 7's HTML template leaves it out)
            display(Image(filename=path, alt=f"figure: {key.replace('-', ' ')} ({path.name})"))
            plt.close(fig)

    def write_metrics(self, metrics: dict) -> Path:
        """Write the metrics JSON, after checking it against the notebook's declaration (``metrics.py``):
        a structure that does not follow it raises ``metrics.MetricsError`` and writes nothing. The run
        records the notebook read are listed with it (its recorded inputs)."""
        from mnist_report import runs

        full = declared.validate(
            self.name, {"notebook": self.name, **metrics, "environment": machine.environment(), "records": runs.used()}
        )
        return write_json(self.metrics_path, full)


def staged(directory: Path) -> Path:
    """``directory``, or its staging directory while ``notebooks.execute`` runs a notebook into it.

    A notebook run by hand (JupyterLab's "Run all"), or executed into another directory, that would
    write into the committed ``reports/`` writes into ``reports/interactive/`` instead (git-ignored):
    only ``make report`` replaces the committed report, through its staging, together with the
    executed notebook and its recorded inputs.
    """
    target, _, stage = os.environ.get(STAGING_ENV, "").partition(os.pathsep)
    if target and stage and Path(directory).resolve() == Path(target).resolve():
        return Path(stage)
    if Path(directory).resolve() == (PROJECT_ROOT / "reports").resolve():
        scratch = Path(directory) / INTERACTIVE
        print(
            f"not run by `make report`: figures and metrics go to {shown(scratch)}/, and the committed "
            "report in reports/ is left as it is"
        )
        return scratch
    return Path(directory)
