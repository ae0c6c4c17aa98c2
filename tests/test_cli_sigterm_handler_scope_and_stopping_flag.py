"""dwq.cli.common's SIGTERM handling on its own (sigterm_as_interrupt, stopping, interrupt_outcome, Terminated),
without a training run: a first SIGTERM in a command raises Terminated and marks the command stopping, a second
one while it stops is ignored, the flag is reset when a command starts (a stopping() before it does not silence
its SIGTERM) and when it ends, the handler that was there before is put back (whatever it was, not SIG_DFL), and
off the main thread no handler is installed (Python refuses one there)."""
import contextlib
import signal
import threading

import pytest

from dwq.cli import common
from dwq.cli.common import Terminated, interrupt_outcome, sigterm_as_interrupt, stopping
from test_train_cli_stop_kept_whole_under_a_second_sigterm import _sigterm_self


@pytest.fixture(autouse=True)
def _flag_and_handler(monkeypatch):
    """Each test starts with the flag down and SIGTERM's own handler, and leaves them so."""
    monkeypatch.setattr(common, "_stopping", False)
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_stops_the_command_and_a_second_one_while_it_stops_is_ignored():
    """The first SIGTERM raises Terminated and sets the flag; the next one, during the clean-up, raises nothing."""
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            _sigterm_self()
        assert common._stopping is True, "the first SIGTERM did not mark the command as stopping"
        _sigterm_self()  # (raises Terminated here if a SIGTERM while stopping is not ignored)
    assert common._stopping is False, "the stopping flag outlived the command"


def test_a_sigterm_after_the_command_calls_stopping_itself_is_ignored():
    """stopping() (an error being handled) silences SIGTERM until the block ends; the next block hears it again."""
    with sigterm_as_interrupt():
        stopping()
        _sigterm_self()
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            _sigterm_self()


def test_a_stopping_call_before_a_command_does_not_silence_its_sigterm():
    """The flag is reset when the block starts, not only when the previous one ended."""
    stopping()
    with sigterm_as_interrupt():
        assert common._stopping is False, "a command started with the stopping flag of before it"
        with pytest.raises(Terminated):
            _sigterm_self()


@pytest.mark.parametrize("leave", ["normally", "by Terminated"])
def test_the_handler_installed_before_the_command_is_put_back(leave):
    """Whatever SIGTERM's handler was (here a test's own), it is SIGTERM's handler again after the block."""
    def before(signum, frame):
        pass

    signal.signal(signal.SIGTERM, before)
    with pytest.raises(Terminated) if leave == "by Terminated" else contextlib.nullcontext():
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not before, "the command installed no handler of its own"
            if leave == "by Terminated":
                _sigterm_self()
    assert signal.getsignal(signal.SIGTERM) is before, f"SIGTERM's handler is {signal.getsignal(signal.SIGTERM)}"


def test_off_the_main_thread_the_block_runs_without_installing_a_handler():
    """signal.signal raises ValueError outside the main thread: there the block only runs its body."""
    before = signal.getsignal(signal.SIGTERM)
    seen = {}

    def body():
        try:
            with sigterm_as_interrupt():
                seen["handler"] = signal.getsignal(signal.SIGTERM)
        except BaseException as e:  # (reported below, in the main thread)
            seen["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert "error" not in seen, f"sigterm_as_interrupt failed off the main thread: {seen.get('error')!r}"
    assert seen["handler"] is before and signal.getsignal(signal.SIGTERM) is before


def test_interrupt_outcome_says_what_stopped_the_command_and_its_exit_status():
    """SIGTERM: 128 + 15; Ctrl-C: 128 + 2. Terminated is a KeyboardInterrupt, caught where Ctrl-C is."""
    assert issubclass(Terminated, KeyboardInterrupt)
    assert interrupt_outcome(Terminated()) == ("terminated (SIGTERM)", 143)
    assert interrupt_outcome(KeyboardInterrupt()) == ("interrupted", 130)
