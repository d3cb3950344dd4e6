"""Throughput, memory and MFU benchmarks of tdlib (``python -m benchmarks.run [--reduced]``).

Importing this package has no side effects; everything runs from :mod:`benchmarks.run`.
"""
