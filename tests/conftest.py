"""Shared test setup: one torch thread per worker (the suite runs with ``-n 2`` on
2 cores) and deterministic seeds."""
import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
