"""The test suite, laid out like tdlib: ``tests/<package>/`` tests ``tdlib/<package>/`` (attacks,
archive, cli, data, experiments, explain, models, training, zoo), ``tests/test_<module>.py`` tests
the top-level module ``tdlib/<module>.py`` (config, io, runner, sweep, utils, names), and
``tests/project/`` holds the project-level checks (pins and notebook hygiene, the built book,
JupyterLab, the benchmarks, other devices). ``tests/conftest.py``'s fixtures apply to every folder.

Each folder is a package, so test files in different folders may share a name (``test_errors.py``).
"""
