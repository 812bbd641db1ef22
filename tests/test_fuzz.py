"""Property-based fuzzing (bounded for CI): a damaged video or weight file ends in the right output
or in one of our clear errors — never a raw exception, never a hang. The long run is
`python -m kf_core fuzz --cases 2000` (kf_core/eval/fuzz.py), which also catches hangs in C code."""
from __future__ import annotations

import contextlib
import itertools
import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kf_core.errors import UserError
from kf_core.eval import fuzz

CASE_SECONDS = 20  # a case that takes longer is a hang
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def _deadline(seconds: int):
    def expired(signum, frame):
        raise TimeoutError(f"a case took more than {seconds} s (hang)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def edits(draw, n_files: int):
    """1-3 edits: truncate at, flip bits at, overwrite with bytes at (often in the header), splice another
    file's bytes in. Positions are fractions of the file, so they fit any length."""
    where = st.one_of(st.floats(0, 0.05), st.floats(0, 1, exclude_max=True))
    one = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
        st.tuples(st.just("flip"), st.lists(st.tuples(where, st.integers(0, 7)), min_size=1, max_size=16)),
        st.tuples(st.just("overwrite"), where, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("splice"), st.integers(0, n_files - 1), where, where, st.integers(1, 4096)),
    )
    return draw(st.lists(one, min_size=1, max_size=3))


def _apply(data: bytes, ops, files) -> bytes:
    for op in ops:
        if not data:
            break
        at = lambda f: min(len(data) - 1, int(f * len(data)))  # noqa: E731
        if op[0] == "truncate":
            data = data[:at(op[1])]
        elif op[0] == "flip":
            b = bytearray(data)
            for f, bit in op[1]:
                b[at(f)] ^= 1 << bit
            data = bytes(b)
        elif op[0] == "overwrite":
            i = at(op[1])
            data = data[:i] + op[2] + data[i + len(op[2]):]
        else:
            other = files[op[1]].read_bytes()
            j = min(len(other) - 1, int(op[3] * len(other)))
            i = at(op[2])
            piece = other[j:j + op[4]]
            data = data[:i] + piece + data[i + len(piece):]
    return data


_cases = itertools.count()


def _case_path(folder, src):
    """A fresh file per example (a probe of an unchanged path is cached), named like its source."""
    path = folder / str(next(_cases)) / src.name
    path.parent.mkdir()
    return path


def _must_be_clear(check, path):
    with _deadline(CASE_SECONDS):
        try:
            assert check(path) == "ok"
        except UserError:
            pass  # a clear error is a right answer for a damaged file


@pytest.fixture(scope="module")
def video_files(tmp_path_factory):
    return fuzz.base_files("video", tmp_path_factory.mktemp("fuzz-video"))


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    return fuzz.base_files("weights", tmp_path_factory.mktemp("fuzz-weights"))


def test_the_real_files_pass_unmutated(video_files, weight_files):
    for path in video_files:
        assert fuzz.check_video(path) == "ok"
    for path in weight_files:
        assert fuzz.check_weights(path) == "ok"


@SETTINGS
@given(data=st.data())
def test_damaged_videos_give_frames_or_a_clear_error(video_files, tmp_path, data):
    src = data.draw(st.sampled_from(video_files))
    case = _case_path(tmp_path, src)
    case.write_bytes(_apply(src.read_bytes(), data.draw(edits(len(video_files))), video_files))
    _must_be_clear(fuzz.check_video, case)


@SETTINGS
@given(data=st.data())
def test_damaged_weight_files_load_or_give_a_clear_error(weight_files, tmp_path, data):
    src = data.draw(st.sampled_from(weight_files))
    case = _case_path(tmp_path, src)
    case.write_bytes(_apply(src.read_bytes(), data.draw(edits(len(weight_files))), weight_files))
    _must_be_clear(fuzz.check_weights, case)


def test_the_long_run_counts_its_cases(tmp_path, capsys):
    import numpy as np
    data, names = fuzz.mutate(b"x" * 10_000, b"y" * 100, np.random.default_rng(3))
    assert names and all(n in fuzz.MUTATIONS for n in names) and isinstance(data, bytes)
    outcome, what = fuzz.run_case("video", 5, tmp_path)
    assert outcome in ("ok", "clear error"), what
