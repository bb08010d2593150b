"""Imported first by the modules that use TensorFlow: TensorFlow imported with its import-time probe
lines filtered out of stderr, and its "retracing" warning dropped (see ``mnist_report/__init__.py``)."""

from mnist_report import drop_retracing_warnings, import_tensorflow_quietly

import_tensorflow_quietly()
drop_retracing_warnings()
