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
