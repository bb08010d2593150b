"""mnist-report: the data, model, training, evaluation and plotting code behind the report.

Importing the package does not import TensorFlow (``check-report``, ``readme`` and the notebook
runner do not need it); the modules that train import ``mnist_report.quiet_tf`` first, which does.
"""

import os
import re
import sys
import tempfile

__version__ = "0.1.0"

# TensorFlow's C++ logging goes to stderr and varies from run to run; the report does not need it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Lines that TensorFlow writes to the stderr file descriptor on every import, before
# TF_CPP_MIN_LOG_LEVEL takes effect: its CUDA probe on a machine without a GPU, and the notice that
# oneDNN's custom operations are on (on CPUs with AVX-512).  Only these are dropped.
_IMPORT_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine.*"
    r"|I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on.*"
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its import-time CUDA probe lines filtered out of stderr.

    Everything else it writes (a real error, a warning) is passed on to stderr unchanged.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line and not _IMPORT_NOISE.fullmatch(line):
                    print(line, file=sys.stderr)


def drop_retracing_warnings() -> None:
    """Keras traces one predict function per model; a study that evaluates many models in a loop
    makes TensorFlow warn about "retracing" though nothing is wrong.  Only that warning is dropped."""
    import logging

    logging.getLogger("tensorflow").addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage()
    )
