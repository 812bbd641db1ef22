"""What an artist meets: loaders' lists and errors, video inputs and frame rates, AUDIO out,
the spectrogram, mux outputs and cancel — each through the node classes in plain Python."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

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


def _options(cls, name: str) -> list:
    return next(list(i.options) for i in cls.GET_SCHEMA().inputs if i.id == name)


def _load_video(fps, file, **kw):
    return KlingFoleyLoadVideo.execute(fps, file, **kw).args


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
    layer = torch.nn.Linear(2, 2)
    handle = _comfy.Loaded(SimpleNamespace(net=layer), ("net",), "MIT")
    assert handle.patchers == {}  # no ComfyUI, no ModelPatcher
    with _comfy.on_device(handle) as value:
        assert value.net is layer
    with pytest.raises(KeyError, match="no part"):
        with _comfy.on_device(handle, "vae"):
            pass
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
    dit_list = _options(loaders.KlingFoleyModelLoader, "model_name")
    assert dit_list == [B, "my_dit.safetensors"]
    assert _options(loaders.KlingFoleyCodecLoader, "vae_name") == [B, "mel_vae.safetensors", "my_dit.safetensors"]
    # kf-tiny's vocoder is Griffin-Lim: one entry for it, not two
    assert _options(loaders.KlingFoleyCodecLoader, "vocoder_name") == [B, "mel_vae.safetensors", "my_dit.safetensors"]
    validate = loaders.KlingFoleyCodecLoader.validate_inputs
    assert validate(vocoder_name=B) is True and validate(vocoder_name=loaders.GRIFFIN_LIM) is True  # old graphs
    assert "not a vocoder file" in validate(vocoder_name="gone.safetensors")


def test_loaders_give_components_on_cpu_and_say_their_licence(comfy):
    dit, licence = loaders.KlingFoleyModelLoader.execute(B, "auto").args
    codec, _ = loaders.KlingFoleyCodecLoader.execute(B, B, B).args
    assert next(dit.value.model.parameters()).device.type == "cpu" and codec.value.sample_rate == 44100
    assert licence == dit.licence == loaders.LICENCE_PACK and "Apache-2.0" in licence
    for cls in loaders.NODES:
        out = cls.GET_SCHEMA().outputs[-1]
        assert out.display_name == "licence" and "CC-BY-NC 4.0" in out.tooltip and "Apache-2.0" in out.tooltip


def test_wrong_kind_and_missing_files_say_so(comfy, tiny_folder):
    folder = comfy["models"] / "kling_foley"
    folder.mkdir()
    shutil.copy(tiny_folder / "vae.safetensors", folder / "looks_like_a_dit.safetensors")
    shutil.copy(tiny_folder / "dit.safetensors", folder / "dit.safetensors")
    with pytest.raises(CheckpointError, match="looks_like_a_dit"):
        loaders.KlingFoleyModelLoader.execute("looks_like_a_dit.safetensors", "fp32")
    with pytest.raises(CheckpointError, match="not a Mel-VAE"):
        loaders.KlingFoleyCodecLoader.execute("dit.safetensors", B, B)
    with pytest.raises(FileNotFoundError, match="was not found"):
        loaders.KlingFoleyModelLoader.execute("deleted.safetensors", "fp32")
    dit, licence = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "fp32").args  # a right file loads
    assert dit.value.info.latent_mean is not None
    assert licence.startswith("not recorded in dit.safetensors")


def test_missing_bundled_weights_explain_how_to_get_them(tmp_path, monkeypatch):
    import kf_core.components
    monkeypatch.setattr(kf_core.components, "BUNDLED_DIR", tmp_path / "kf-tiny")
    with pytest.raises(FileNotFoundError, match="bundled kf-tiny weights are not in this install"):
        loaders.KlingFoleyModelLoader.execute(B, "auto")


@pytest.mark.parametrize("fps", [16, 24, 30])
def test_load_video_duration_is_frames_over_fps(comfy, fps):
    n = 2 * fps
    images = torch.rand(n, 32, 32, 3)
    clip, rate, duration = _load_video(float(fps), "none", images=images)
    assert (rate, duration) == (fps, 2.0)
    clip, rate, duration = _load_video(0.0, "none", images=images,
                                                      video_info=LazyInfo(loaded_fps=fps, source_fps=60))
    assert rate == fps
    make_video(comfy["input"] / f"clip{fps}.mp4", fps=fps, seconds=1.5, width=32, height=32)
    assert f"clip{fps}.mp4" in _options(KlingFoleyLoadVideo, "file")
    _, rate, duration = _load_video(0.0, f"clip{fps}.mp4")
    assert rate == pytest.approx(fps) and duration == pytest.approx(1.5, abs=1e-3)
    video = _comfy.PlainVideo(path=comfy["input"] / f"clip{fps}.mp4")
    clip, _, duration = _load_video(0.0, "none", video=video)
    assert clip.path is not None and duration == pytest.approx(1.5, abs=1e-3)


def test_load_video_errors(comfy):
    with pytest.raises(ValueError, match="frame rate"):
        _load_video(0.0, "none", images=torch.rand(8, 16, 16, 3))
    with pytest.raises(FileNotFoundError, match="no video given"):
        _load_video(0.0, "none")
    with pytest.raises(FileNotFoundError, match="upload"):
        _load_video(0.0, "gone.mp4")


def test_vocoder_gives_core_audio(comfy):
    from kf_core.pipeline import Mel
    from kf_core.config import SeqConfig
    codec = loaders.bundled().codec
    seq = SeqConfig(0.8)
    mel = Mel(mel=torch.randn(2, 2, 128, seq.mel_len) - 4, seq=seq)
    (audio,) = KlingFoleyVocoder.execute(_comfy.Loaded(codec, ("vocoder",), "x"), mel, "clip").args
    w = audio["waveform"]
    assert w.shape == (2, 2, seq.samples) and w.dtype == torch.float32 and w.abs().max() <= 1
    assert audio["sample_rate"] == 44100


def test_spectrogram_shows_a_left_only_tone_in_the_top_panel():
    t = torch.arange(44100) / 44100
    wave = torch.zeros(1, 2, 44100)
    wave[0, 0] = 0.5 * torch.sin(2 * torch.pi * 1000 * t)
    (img,) = KlingFoleySpectrogram.execute({"waveform": wave, "sample_rate": 44100}, 80.0).args
    assert img.shape[0] == 1 and img.shape[-1] == 3 and 0 <= img.min() and img.max() <= 1
    top, bottom = img[0, :128], img[0, 130:]
    assert top.mean() > bottom.mean() + 0.05
    row = top.mean(dim=(1, 2)).argmax()
    assert 40 < row < 100  # 1 kHz sits in the middle of a Slaney mel axis, low rows = high pitch


def test_mux_saves_takes_never_overwrites_and_cancel_leaves_nothing(comfy, monkeypatch):
    make_video(comfy["input"] / "v.mp4", fps=24, seconds=1.0, width=32, height=32)
    clip, _, _ = _load_video(0.0, "v.mp4")
    audio = {"waveform": torch.zeros(2, 2, 30000), "sample_rate": 44100}
    out = KlingFoleyMuxAudio.execute(clip, audio, "takes/foley", "mkv")
    first = Path(out[1])
    assert first.is_file() and len(list((comfy["output"] / "takes").iterdir())) == 2
    assert out.ui["images"][0]["subfolder"] == "takes"
    again = KlingFoleyMuxAudio.execute(clip, audio, "takes/foley", "mkv")
    assert Path(again[1]) != first and len(list((comfy["output"] / "takes").iterdir())) == 4

    import kf_core.io
    real = kf_core.io.mux_audio

    def cancel_after_first(*a, **kw):
        path = real(*a, **kw)
        _comfy.request_cancel()
        return path
    monkeypatch.setattr(kf_core.io, "mux_audio", cancel_after_first)
    with pytest.raises(_comfy.Cancelled):
        KlingFoleyMuxAudio.execute(clip, audio, "cancelled/foley", "mp4")
    assert not any((comfy["output"] / "cancelled").iterdir())
    with pytest.raises(ValueError, match="outside the output folder"):
        KlingFoleyMuxAudio.execute(clip, audio, "../escape", "mp4")


def test_vocoder_level_keeps_loud_takes_from_clipping(comfy):
    from kf_core.config import SeqConfig
    from kf_core.pipeline import Mel
    codec = _comfy.Loaded(loaders.bundled().codec, ("vocoder",), "x")
    seq = SeqConfig(0.8)
    mel = Mel(mel=torch.randn(1, 2, 128, seq.mel_len) + 3.0, seq=seq)               # far too loud
    clipped = KlingFoleyVocoder.execute(codec, mel, "clip")[0]["waveform"]
    limited = KlingFoleyVocoder.execute(codec, mel)[0]["waveform"]                   # the default: limit
    normalized = KlingFoleyVocoder.execute(codec, mel, "normalize", -6.0)[0]["waveform"]
    assert clipped.abs().max() == 1.0 and (clipped.abs() == 1.0).sum() > 100         # hard clipping
    assert limited.abs().max() <= 10 ** (-1 / 20) + 1e-6 and limited.shape == clipped.shape
    assert normalized.abs().max() == pytest.approx(10 ** (-6 / 20), abs=1e-6)


def test_sampler_steps_and_cfg_zero_mean_the_models_defaults(comfy, monkeypatch):
    import kf_core.pipeline
    from nodes.sampler import KlingFoleySampler
    seen, bars = [], []
    monkeypatch.setattr(kf_core.pipeline, "sample_latents", lambda dit, **kw: seen.append(kw) or "latent")
    monkeypatch.setattr(_comfy, "progress", lambda total: bars.append(total))
    model, _ = loaders.KlingFoleyModelLoader.execute(B, "auto").args
    args = dict(seed=1, sampler="euler", schedule="uniform", duration=1.0, shift=0.0, batch_size=1)
    assert KlingFoleySampler.execute(model, steps=0, cfg=0.0, **args)[0] == "latent"
    assert KlingFoleySampler.execute(model, steps=7, cfg=2.5, **args)[0] == "latent"
    assert [(kw["steps"], kw["cfg"]) for kw in seen] == [(None, None), (7, 2.5)]  # None: the engine's default
    defaults = model.value.sampling_defaults
    assert (defaults.steps, defaults.cfg) == (20, 4.5) and bars == [20, 7]       # kf-tiny: the paper's


def test_model_loader_auto_on_a_cpu_follows_the_networks_size(comfy, tiny_folder, monkeypatch):
    import kf_core.precision as precision
    folder = comfy["models"] / "kling_foley"
    folder.mkdir()
    shutil.copy(tiny_folder / "dit.safetensors", folder / "dit.safetensors")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    dit, _ = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "auto").args
    assert next(dit.value.model.parameters()).dtype == torch.float32          # small: as the CLI, float32
    monkeypatch.setattr(precision, "BIG_MODEL_PARAMS", 1000)                  # as if it were MMAudio-sized
    dit, _ = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "auto").args
    assert next(dit.value.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)       # a CPU without native bf16
    dit, _ = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "auto").args
    assert next(dit.value.model.parameters()).dtype == torch.float32
    dit, _ = loaders.KlingFoleyModelLoader.execute("dit.safetensors", "fp32").args
    assert next(dit.value.model.parameters()).dtype == torch.float32
