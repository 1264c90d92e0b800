import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Small networks train faster on one intra-op thread than on two contended ones (SPEC §2)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def interactive_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT, as Ctrl-C in a terminal would.

    A shell starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt;
    restoring the default lets the test behave the same however the suite was launched.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    """Run tests marked ``slow`` first, so that under ``pytest -n 2`` (``make test``) the longest test
    starts at once on one worker while the other worker takes the rest, instead of starting last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
