import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The toy models here are made of tiny ops: on a shared 2-core machine one intra-op thread
    is ~20x faster than two that wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
