"""Quiet blocks for dwq's own eval forwards that read no statistic nor range (counting MACs, reading
the number of classes): inside one, neither an untrained switchable-BN branch nor an activation
quantizer without a tracked range warns, nor uses up its once-only warning."""
import contextlib

_depth = 0  # of untrained_quiet() blocks


@contextlib.contextmanager
def untrained_quiet():
    """Not warnings.catch_warnings: leaving that resets Python's once-per-message record, and the
    warning then came again after every such forward."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def quiet() -> bool:
    return _depth > 0
