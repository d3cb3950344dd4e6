"""The experiments behind the book, each one call from a notebook or the CLI.

* :mod:`~tdlib.experiments.params`: one validated parameter record per experiment.
* :mod:`~tdlib.experiments.classification` (Exp 1), :mod:`~tdlib.experiments.robustness`
  (Exp 2 and the per-scale study), :mod:`~tdlib.experiments.explain` (Exp 3): ``run(params)``
  returns a frozen result record (:mod:`~tdlib.experiments.records`) plus live objects to plot.
* :mod:`~tdlib.experiments.models`: where the models come from (the zoo or training).
* :mod:`~tdlib.experiments.claims`: verdicts with intervals, thresholds and the guard;
  :mod:`~tdlib.experiments.stats` the paired bootstrap; :mod:`~tdlib.experiments.paper` the paper's
  numbers; :mod:`~tdlib.experiments.store` where results are saved;
  :mod:`~tdlib.experiments.verdicts` every verdict of a profile.
"""
