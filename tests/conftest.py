"""Root test configuration: Hypothesis profiles and the seed fixture.

Must NOT import torch (the GPU/torch logic lives in tests/empirical/conftest.py).
Profiles, chosen by HYPOTHESIS_PROFILE: dev (default, ~50 examples), ci (~300), thorough (thousands).
Seeds: TOKENTREE_TEST_SEED=<int> pins the global seed, =all runs 0..99; the default is one seed
per day in [0, 99], printed in the header so that a failure can be reproduced.
"""

from __future__ import annotations

import datetime
import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _seeds() -> list[int]:
    raw = os.environ.get("TOKENTREE_TEST_SEED")
    if raw == "all":
        return list(range(100))
    if raw:
        return [int(raw)]
    return [datetime.date.today().toordinal() % 100]


def pytest_report_header(config):
    return (f"TOKENTREE_TEST_SEED={','.join(map(str, _seeds())) if len(_seeds()) < 5 else 'all'}; "
            f"HYPOTHESIS_PROFILE={os.environ.get('HYPOTHESIS_PROFILE', 'dev')}")


def pytest_generate_tests(metafunc):
    if "global_seed" in metafunc.fixturenames:
        metafunc.parametrize("global_seed", _seeds())
