"""The paper's experiments with real causal language models (torch + transformers).

Importing this package is cheap and does NOT import torch: the console command ``elasticity``
lives in :mod:`empirical.cli` and must start fast for ``elasticity prove`` or ``simulate``, which
need no torch at all. Submodules (``models``, ``train``, ``metrics``, ...) import torch themselves.
"""
