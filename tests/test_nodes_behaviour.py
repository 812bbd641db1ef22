"""What an artist meets: loaders' lists and errors, video inputs and frame rates, AUDIO out,
the spectrogram, mux outputs and cancel — each through the node classes in plain Python."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from kf_core.loading.state import CheckpointError
from media import make_video
from nodes import _comfy, loaders
from nodes.codec import KlingFoleyVocoder
from nodes.mux import KlingFoleyMuxAudio
from nodes.preview import KlingFoleySpectrogram
from nodes.video import KlingFoleyLoadVideo

B = _comfy.BUNDLED


class LazyInfo(Mapping):
    """Like VideoHelperSuite's video info: a Mapping, not a dict."""

    def __init__(self, **kw):
        self._d = kw

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


def test_plain_fallbacks():
    assert _comfy.torch_device() == torch.device("cpu") and _comfy.offload_device() == torch.device("cpu")
    assert _comfy.weight_dtype("auto") == torch.float32 and _comfy.weight_dtype("bf16") == torch.bfloat16
    with _comfy.on_device(torch.nn.Linear(2, 2)) as dev:
        assert dev == torch.device("cpu")
    cb = _comfy.progress(3)
    cb(0, 3, None, None)
    _comfy.request_cancel()
    with pytest.raises(_comfy.Cancelled):
        cb(1, 3, None, None)
    cb(2, 3, None, None)  # a cancel is consumed once


def test_loader_lists_bundled_first_then_files(comfy):
    (comfy["models"] / "kling_foley").mkdir()
    (comfy["models"] / "kling_foley" / "my_dit.safetensors").write_bytes(b"x")
    (comfy["models"] / "kling_foley" / "notes.txt").write_text("not a model")
    (comfy["models"] / "vae").mkdir()
    (comfy["models"] / "vae" / "mel_vae.safetensors").write_bytes(b"x")
    dit_list = loaders.KlingFoleyModelLoader.INPUT_TYPES()["required"]["model_name"][0]
    assert dit_list == [B, "my_dit.safetensors"]
    vae_list = loaders.KlingFoleyCodecLoader.INPUT_TYPES()["required"]["vae_name"][0]
    assert vae_list == [B, "mel_vae.safetensors", "my_dit.safetensors"]


def test_loaders_give_components_on_cpu(comfy):
    (dit,) = loaders.KlingFoleyModelLoader().load(B, "auto")
    (codec,) = loaders.KlingFoleyCodecLoader().load(B, B, B)
    assert next(dit.model.parameters()).device.type == "cpu" and codec.sample_rate == 44100


def test_wrong_kind_and_missing_files_say_so(comfy, tiny_folder):
    folder = comfy["models"] / "kling_foley"
    folder.mkdir()
    shutil.copy(tiny_folder / "vae.safetensors", folder / "looks_like_a_dit.safetensors")
    shutil.copy(tiny_folder / "dit.safetensors", folder / "dit.safetensors")
    with pytest.raises(CheckpointError, match="looks_like_a_dit"):
        loaders.KlingFoleyModelLoader().load("looks_like_a_dit.safetensors", "fp32")
    with pytest.raises(CheckpointError, match="not a Mel-VAE"):
        loaders.KlingFoleyCodecLoader().load("dit.safetensors", B, B)
    with pytest.raises(FileNotFoundError, match="was not found"):
        loaders.KlingFoleyModelLoader().load("deleted.safetensors", "fp32")
    (dit,) = loaders.KlingFoleyModelLoader().load("dit.safetensors", "fp32")  # a right file loads
    assert dit.info.latent_mean is not None


def test_missing_bundled_weights_explain_how_to_get_them(tmp_path, monkeypatch):
    import kf_core.components
    monkeypatch.setattr(kf_core.components, "BUNDLED_DIR", tmp_path / "kf-tiny")
    loaders.bundled.cache_clear()
    with pytest.raises(FileNotFoundError, match="bundled kf-tiny weights are not in this install"):
        loaders.KlingFoleyModelLoader().load(B, "auto")
    loaders.bundled.cache_clear()


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_load_video_duration_is_frames_over_fps(comfy, fps):
    n = 2 * fps
    images = torch.rand(n, 32, 32, 3)
    clip, rate, duration = KlingFoleyLoadVideo().load(float(fps), "none", images=images)
    assert (rate, duration) == (fps, 2.0)
    clip, rate, duration = KlingFoleyLoadVideo().load(0.0, "none", images=images,
                                                      video_info=LazyInfo(loaded_fps=fps, source_fps=60))
    assert rate == fps
    make_video(comfy["input"] / f"clip{fps}.mp4", fps=fps, seconds=1.5, width=32, height=32)
    assert f"clip{fps}.mp4" in KlingFoleyLoadVideo.INPUT_TYPES()["required"]["file"][0]
    _, rate, duration = KlingFoleyLoadVideo().load(0.0, f"clip{fps}.mp4")
    assert rate == pytest.approx(fps) and duration == pytest.approx(1.5, abs=1e-3)
    video = _comfy.PlainVideo(path=comfy["input"] / f"clip{fps}.mp4")
    clip, _, duration = KlingFoleyLoadVideo().load(0.0, "none", video=video)
    assert clip.path is not None and duration == pytest.approx(1.5, abs=1e-3)


def test_load_video_errors(comfy):
    with pytest.raises(ValueError, match="frame rate"):
        KlingFoleyLoadVideo().load(0.0, "none", images=torch.rand(8, 16, 16, 3))
    with pytest.raises(FileNotFoundError, match="no video given"):
        KlingFoleyLoadVideo().load(0.0, "none")
    with pytest.raises(FileNotFoundError, match="upload"):
        KlingFoleyLoadVideo().load(0.0, "gone.mp4")


def test_vocoder_gives_core_audio(comfy):
    from kf_core.pipeline import Mel
    from kf_core.config import SeqConfig
    codec = loaders.bundled().codec
    seq = SeqConfig(0.8)
    mel = Mel(mel=torch.randn(2, 2, 128, seq.mel_len) - 4, seq=seq)
    (audio,) = KlingFoleyVocoder().vocode(codec, mel)
    w = audio["waveform"]
    assert w.shape == (2, 2, seq.samples) and w.dtype == torch.float32 and w.abs().max() <= 1
    assert audio["sample_rate"] == 44100


def test_spectrogram_shows_a_left_only_tone_in_the_top_panel():
    t = torch.arange(44100) / 44100
    wave = torch.zeros(1, 2, 44100)
    wave[0, 0] = 0.5 * torch.sin(2 * torch.pi * 1000 * t)
    (img,) = KlingFoleySpectrogram().draw({"waveform": wave, "sample_rate": 44100}, 80.0)
    assert img.shape[0] == 1 and img.shape[-1] == 3 and 0 <= img.min() and img.max() <= 1
    top, bottom = img[0, :128], img[0, 130:]
    assert top.mean() > bottom.mean() + 0.05
    row = top.mean(dim=(1, 2)).argmax()
    assert 40 < row < 100  # 1 kHz sits in the middle of a Slaney mel axis, low rows = high pitch


def test_mux_saves_takes_never_overwrites_and_cancel_leaves_nothing(comfy, monkeypatch):
    make_video(comfy["input"] / "v.mp4", fps=24, seconds=1.0, width=32, height=32)
    clip, _, _ = KlingFoleyLoadVideo().load(0.0, "v.mp4")
    audio = {"waveform": torch.zeros(2, 2, 30000), "sample_rate": 44100}
    out = KlingFoleyMuxAudio().mux(clip, audio, "takes/foley", "mkv")
    first = Path(out["result"][1])
    assert first.is_file() and len(list((comfy["output"] / "takes").iterdir())) == 2
    assert out["ui"]["images"][0]["subfolder"] == "takes"
    again = KlingFoleyMuxAudio().mux(clip, audio, "takes/foley", "mkv")
    assert Path(again["result"][1]) != first and len(list((comfy["output"] / "takes").iterdir())) == 4

    import kf_core.io
    real = kf_core.io.mux_audio

    def cancel_after_first(*a, **kw):
        path = real(*a, **kw)
        _comfy.request_cancel()
        return path
    monkeypatch.setattr(kf_core.io, "mux_audio", cancel_after_first)
    with pytest.raises(_comfy.Cancelled):
        KlingFoleyMuxAudio().mux(clip, audio, "cancelled/foley", "mp4")
    assert not any((comfy["output"] / "cancelled").iterdir())
    with pytest.raises(ValueError, match="outside the output folder"):
        KlingFoleyMuxAudio().mux(clip, audio, "../escape", "mp4")
