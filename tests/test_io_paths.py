"""The publishing routine: links never hang it, signals and kills leave nothing for long, files follow
the umask, a full disk or a read-only folder gets a message naming the real file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from kf_core.errors import UserError
from kf_core.io import atomic_output, mux_audio, sweep_partials, unique_path, write_audio
from kf_core.io.paths import partial_name
from kf_core.validate import check_outputs

REPO = Path(__file__).resolve().parents[1]
SR = 44100


def _within(seconds, fn):
    """Run fn in a thread; fail (instead of hanging the suite) if it takes longer than `seconds`."""
    box = {}
    t = threading.Thread(target=lambda: box.update(result=fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s (hang)"
    return box["result"]


def test_dangling_and_normal_links_are_taken_names(tmp_path):
    (tmp_path / "a.wav").symlink_to(tmp_path / "gone.wav")                     # dangling
    target = tmp_path / "kept.txt"
    target.write_text("precious")
    (tmp_path / "b.wav").symlink_to(target)                                    # normal
    assert unique_path(tmp_path / "a.wav").name == "a_00001.wav"
    out = _within(20, lambda: write_audio(tmp_path / "a.wav", torch.zeros(2, 1000), SR))
    assert out.name == "a_00001.wav" and (tmp_path / "a.wav").is_symlink() and not (tmp_path / "gone.wav").exists()
    out = _within(20, lambda: write_audio(tmp_path / "b.wav", torch.zeros(2, 1000), SR))
    assert out.name == "b_00001.wav" and target.read_text() == "precious"


def test_dangling_link_as_video_output_does_not_hang(tmp_path):
    (tmp_path / "v.mp4").symlink_to(tmp_path / "nowhere" / "v.mp4")
    out = _within(60, lambda: mux_audio(torch.rand(8, 16, 16, 3), torch.zeros(2, 4410), SR, tmp_path / "v.mp4",
                                        fps=8))
    assert out.name == "v_00001.mp4" and out.stat().st_size > 0


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        wav = write_audio(tmp_path / "a.wav", torch.zeros(1, 100), SR)
        mp4 = mux_audio(torch.rand(4, 16, 16, 3), torch.zeros(1, 100), SR, tmp_path / "a.mp4", fps=8)
    finally:
        os.umask(old)
    assert (wav.stat().st_mode & 0o777, mp4.stat().st_mode & 0o777) == (mode, mode)


_SLOW_WRITER = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    sys.path.insert(0, {repo!r})
    from kf_core.io import write_audio
    marker = {marker!r}
    def previous(signum, frame):              # the program's own handler, installed first
        open(marker, "w").write("ran")
        sys.exit(3)
    if marker:
        signal.signal(signal.SIGTERM, previous)
    def chunks():
        while True:                           # an endless slow stream: only a signal ends it
            yield np.zeros((2, 4096), np.float32)
            time.sleep(0.01)
    write_audio({out!r}, chunks(), 44100)
""")


def _start_writer(tmp_path, marker=""):
    script = _SLOW_WRITER.format(repo=str(REPO), out=str(tmp_path / "take.wav"), marker=marker)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not [p for p in tmp_path.iterdir() if ".partial" in p.name and p.stat().st_size > 10_000]:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the writer never started writing"
        time.sleep(0.05)
    return proc


def test_sigterm_during_a_write_leaves_nothing(tmp_path):
    proc = _start_writer(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM                                    # still dies of the signal
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_chain_keeps_the_programs_own_handler(tmp_path):
    marker = tmp_path / "handler-ran"
    proc = _start_writer(tmp_path, marker=str(marker))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 3 and marker.read_text() == "ran"
    assert [p.name for p in tmp_path.iterdir()] == ["handler-ran"]


def test_sigkill_leftover_is_swept_by_the_next_run_but_live_files_are_kept(tmp_path):
    proc = _start_writer(tmp_path)
    proc.kill()                                                                # nothing can clean up after this
    proc.wait(60)
    (left,) = [p for p in tmp_path.iterdir() if ".partial" in p.name]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / partial_name(tmp_path / "other.wav").replace(f"-{os.getpid()}.", f"-{sleeper.pid}.")
        live.write_bytes(b"being written")                                     # a live process's file
        foreign = tmp_path / ".notes.partial.txt"
        foreign.write_text("not ours")
        write_audio(tmp_path / "next.wav", torch.zeros(1, 100), SR)            # the next run
        names = sorted(p.name for p in tmp_path.iterdir())
        assert left.name not in names and live.name in names and foreign.name in names and "next.wav" in names
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_partials(tmp_path) == [live]                                  # its writer is gone now


def test_exception_in_the_block_removes_the_temp_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "x.wav") as pending:
            pending.tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


_FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    sys.path.insert(0, {repo!r})
    import torch
    from kf_core.io import mux_audio, write_audio
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (9000, 9000))
    for name, write in (("a.wav", lambda p: write_audio(p, torch.zeros(2, 44100), 44100)),
                        ("v.mp4", lambda p: mux_audio(torch.rand(30, 64, 64, 3), torch.zeros(2, 44100), 44100, p,
                                                      fps=30))):
        try:
            write({out!r} + "/" + name)
            print("written", name)
        except Exception as e:
            print(type(e).__name__, e)
""")


def test_a_full_file_system_is_named_with_the_real_path(tmp_path):
    res = subprocess.run([sys.executable, "-c", _FULL_DISK.format(repo=str(REPO), out=str(tmp_path))],
                         capture_output=True, text=True, timeout=300)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2, res.stdout + res.stderr
    for line, name in zip(lines, ("a.wav", "v.mp4")):
        assert line.startswith(f"UserError {tmp_path / name}: writing failed"), line
        assert ".partial" not in line and "codec" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no file can be created in: chmod 555 (an ordinary user), or the immutable flag (root,
    whom permissions do not stop)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no folder is read-only to root")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)])


def test_read_only_folder_is_refused_before_any_work(read_only_folder):
    with pytest.raises(UserError, match=r"ro/a\.wav: creating the file failed: permission denied — choose"):
        check_outputs(audio_out=read_only_folder / "a.wav")
    with pytest.raises(UserError, match=r"ro/v\.mp4: creating the file failed: permission denied"):
        check_outputs(out=read_only_folder / "v.mp4", video=torch.rand(4, 8, 8, 3))
    assert list(read_only_folder.iterdir()) == []


def test_a_file_in_place_of_the_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_outputs(audio_out=tmp_path / "f" / "a.wav")
