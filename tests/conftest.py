import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Small networks train faster on one intra-op thread than on two contended ones (SPEC §2)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
