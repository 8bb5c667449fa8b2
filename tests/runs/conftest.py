"""One local Ray (2 CPUs) for every test under tests/runs/: Ray takes seconds to start,
so the tests share it; ``run_trials`` uses an already initialised Ray as it is."""
import logging

import pytest


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray", reason="ray is not installed (the normrl[ray] extra)")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
