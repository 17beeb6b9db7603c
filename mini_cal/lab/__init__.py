"""The lab: everything around the teaching core that runs experiments or talks to a terminal or a disk.

The core (``mini_cal.layers``, ``model``, ``contribution``, ``methods``, ``optim``, ``train``, ``evaluate``,
``noise``, ``data``, ``synthetic``, ``gradcheck``, ``backend``) never imports from here; this package imports the
core. Modules:

* :mod:`~mini_cal.lab.io` - the one atomic file writer (and the results' file permissions);
* :mod:`~mini_cal.lab.checkpoint` - model files, training checkpoints, resume and Ctrl-C (a training hook);
* :mod:`~mini_cal.lab.runs` - one (method, configuration, seed) run as a task, and the worker pool;
* :mod:`~mini_cal.lab.experiments` - sweep, compare and robustness;
* :mod:`~mini_cal.lab.stats` - paired significance tests over seeds;
* :mod:`~mini_cal.lab.tables` - every markdown table; :mod:`~mini_cal.lab.plots` - every figure;
* :mod:`~mini_cal.lab.presets` - the synthetic preset files: where they are, reading them checked against their
  manifest, writing them;
* :mod:`~mini_cal.lab.selfcheck` - every backward pass against finite differences, as one report;
* :mod:`~mini_cal.lab.cli` - the ``mini-cal`` command.
"""
