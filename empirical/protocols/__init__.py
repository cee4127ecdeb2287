"""Experiment protocols, discovered by file name: ``protocol = "NAME"`` in a TOML config makes the
runner import ``empirical.protocols.NAME``, which defines ``Config`` and
``run(config, out_dir, *, progress=True) -> dict``. Nothing to register. Modules starting with ``_``
are helpers, not protocols. Importing this package imports nothing heavy.
"""
