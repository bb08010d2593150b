"""`make bench`: the training-speed benchmark and its PyTorch reference, outside the package (not installed;
run from the project root as ``python -m benchmarks.bench``). It imports ``mnist_report``; the package never
imports it."""
