"""dwq.memory.keep_freed_memory (found by mutation): the exact mallopt calls it makes, in order, and what
it returns when glibc refuses one or has none. A stand-in C library records the calls, so the
allocator of the test process is not changed."""
import sys

import pytest

import dwq.memory
from dwq.memory import keep_freed_memory

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


class _Lib:
    def __init__(self, calls, results=None, has_mallopt=True):
        if has_mallopt:
            def mallopt(param, value):
                calls.append((param, value))
                return (results or {}).get(param, 1)
            self.mallopt = mallopt


@pytest.fixture
def record(monkeypatch):
    """(calls made to mallopt, names CDLL was asked for); the C library is a stand-in."""
    made, libs = [], []

    def install(**lib_kw):
        def cdll(name, *args, **kw):
            libs.append(name)
            return _Lib(made, **lib_kw)
        monkeypatch.setattr(dwq.memory.ctypes, "CDLL", cdll)

    monkeypatch.setattr(sys, "platform", "linux")
    install()
    return made, libs, install


def test_default_settings_are_the_32_mib_mmap_threshold_then_a_1_gib_trim_threshold(record):
    made, libs, _ = record
    assert keep_freed_memory() is True
    assert libs == [None]  # the process's own C library
    assert made == [(M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30)]
    assert dwq.memory.MMAP_THRESHOLD_MAX == 32 << 20


@pytest.mark.parametrize("trim", [0, 1, 2 ** 31 - 1])
def test_every_trim_threshold_in_range_is_passed_on(record, trim):
    made, _, _ = record
    assert keep_freed_memory(trim) is True
    assert made == [(M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, trim)]


@pytest.mark.parametrize("refused", [M_MMAP_THRESHOLD, M_TRIM_THRESHOLD])
def test_a_setting_glibc_refuses_makes_it_return_false(record, refused):
    _, _, install = record
    install(results={refused: 0})
    assert keep_freed_memory() is False


def test_a_c_library_without_mallopt_returns_false(record):
    made, _, install = record
    install(has_mallopt=False)
    assert keep_freed_memory() is False and made == []


def test_another_os_changes_nothing(record, monkeypatch):
    made, libs, _ = record
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False and made == [] and libs == []
