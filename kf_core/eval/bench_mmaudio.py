"""`python -m kf_core bench mmaudio --mmaudio-src DIR`: one 8 s clip through the whole MMAudio-S-44k
stack, MMAudio's own code against ours, on the same weights, alternately in one process (issue 15,
goal 1).

The job is what a user runs: read the video (CLIP frames at 8 fps, Synchformer frames at 25 fps),
CLIP image + text features, Synchformer features, 25-step Euler sampling with CFG 4.5 and the empty
negative prompt, VAE decode, BigVGAN-v2; ours also watermarks. MMAudio's side is its `demo.py` path
(`load_video`, `FeaturesUtils`, `generate`) imported unchanged from a local MMAudio checkout
(`--mmaudio-src`: a clone of hkchengrex/MMAudio; it needs open_clip, timm, einops, omegaconf,
torchdiffeq and colorlog importable). Nothing of MMAudio's is copied here.

No weights are downloaded: `--work` receives random weights written by MMAudio's own constructors
in its release formats (`mmaudio_small_44k.pth`, `v1-44.pth`, `synchformer_state_dict.pth`, a
BigVGAN-v2 folder with `config.json` + `bigvgan_generator.pt`) and open_clip's DFN5B architecture
(ViT-H-14-378-quickgelu) as safetensors; MMAudio reads them through two patched download calls
(`create_model_from_pretrained`, `BigVGAN.from_pretrained`), ours through `load_pipeline(work)` as
a user's folder. Parameters the constructors leave at zero or NaN (adaLN gates, empty features,
latent statistics) are drawn too, so the network's output is not trivially zero.

Rows: MMAudio at each `--mmaudio-precision` (fp32: its `--full_precision`; bf16: its demo's
default, on a CPU too) and ours at `--precision` (default auto: bf16 networks on a CPU with native
bf16, fp32 vocoder); each stage's median over `--repeats` rounds after a warm-up, and ours' deviation
from our own fp32 run (log-mel L1, SI-SDR), which runs once before the timed rounds.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from .benchutil import format_table

__all__ = ["add_arguments", "main"]

STAGES = ("decode", "clip", "sync", "text", "sampling", "vae", "vocoder", "other")
BIGVGAN_44K = {"resblock": "1", "num_mels": 128, "upsample_rates": [8, 4, 2, 2, 2, 2],
               "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4], "upsample_initial_channel": 1536,
               "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
               "activation": "snakebeta", "snake_logscale": True, "use_tanh_at_final": False,
               "use_bias_at_final": False, "sampling_rate": 44100, "hop_size": 512, "num_freq": 1025,
               "n_fft": 2048, "win_size": 2048, "fmin": 0, "fmax": None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mmaudio-src", type=Path, required=True, dest="mmaudio_src",
                   help="a local clone of hkchengrex/MMAudio (its `mmaudio` package is imported from there)")
    p.add_argument("--work", type=Path, required=True, help="folder for the random-weight files (reused)")
    p.add_argument("--video", type=Path, default=None, help="input video (default: a made 8 s 256x256 clip)")
    p.add_argument("--precision", default="auto", help="our precision (default auto)")
    p.add_argument("--mmaudio-precision", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"),
                   dest="mmaudio_precision", help="MMAudio's dtypes to run (default: fp32 bf16)")
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (median reported; default 2)")
    p.add_argument("--seed", type=int, default=0)


def _import_mmaudio(src: Path):
    if not (src / "mmaudio" / "eval_utils.py").is_file():
        raise SystemExit(f"error: --mmaudio-src {src} holds no mmaudio/eval_utils.py: give a clone of "
                         "hkchengrex/MMAudio (git clone https://github.com/hkchengrex/MMAudio)")
    sys.path.insert(0, str(src))
    try:
        import mmaudio.eval_utils as eval_utils
        import mmaudio.ext.autoencoder.autoencoder as autoencoder
        import mmaudio.model.utils.features_utils as features_utils
    except ImportError as e:
        raise SystemExit(f"error: MMAudio's code would not import ({e}); install what it needs beside this "
                         "project (omegaconf, torchdiffeq, colorlog; open_clip, timm and einops come with it)") from None
    return eval_utils, features_utils, autoencoder


def _fill_unset_(module: torch.nn.Module, g: torch.Generator) -> None:
    """Parameters a constructor leaves at zero or NaN (adaLN gates, empty features, latent statistics)
    -> small random values, so that a random network's output is not zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("latent_std"):
                p.copy_(1.0 + 0.5 * torch.rand(p.shape, generator=g))
            elif name.endswith("latent_mean"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.is_floating_point() and (torch.isnan(p).any() or not p.any()) and p.dim() >= 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def make_weights(work: Path, seed: int) -> None:
    """Random weights in MMAudio's release formats (MMAudio's own constructors) -> `work` (skipped if there)."""
    import open_clip

    from mmaudio.ext.autoencoder.vae import get_my_vae
    from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN
    from mmaudio.ext.bigvgan_v2.env import AttrDict
    from mmaudio.ext.synchformer import Synchformer
    from mmaudio.model.networks import get_my_mmaudio

    from ..loading.state import save_state_dict
    work.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    makers = {
        "mmaudio_small_44k.pth": lambda: get_my_mmaudio("small_44k"),
        "v1-44.pth": lambda: get_my_vae("44k"),
        "synchformer_state_dict.pth": lambda: Synchformer(),
    }
    for name, make in makers.items():
        if not (work / name).is_file():
            m = make()
            _fill_unset_(m, g)
            torch.save(m.state_dict(), work / name)
    voc = work / "bigvgan_v2"
    if not (voc / "bigvgan_generator.pt").is_file():
        voc.mkdir(exist_ok=True)
        m = BigVGAN(AttrDict(BIGVGAN_44K), use_cuda_kernel=False)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if n.endswith(("alpha", "beta")):
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        (voc / "config.json").write_text(json.dumps(BIGVGAN_44K))
        torch.save({"generator": m.state_dict()}, voc / "bigvgan_generator.pt")
    clip = work / "DFN5B-CLIP-ViT-H-14-384_random.safetensors"
    if not clip.is_file():
        m = open_clip.create_model("ViT-H-14-378-quickgelu", pretrained=None)
        save_state_dict({k: v.detach().contiguous() for k, v in m.state_dict().items()}, clip)


def _mmaudio_side(work: Path, dtype: torch.dtype, features_utils, autoencoder):
    """MMAudio's network, FeaturesUtils and flow, built as its demo.py builds them, from `work`."""
    import open_clip

    from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN
    from mmaudio.ext.bigvgan_v2.env import AttrDict
    from mmaudio.model.flow_matching import FlowMatching
    from mmaudio.model.networks import get_my_mmaudio

    from ..loading.state import read_state_dict

    def local_clip(*_args, **_kw):
        m = open_clip.create_model("ViT-H-14-378-quickgelu", pretrained=None)
        m.load_state_dict(read_state_dict(work / "DFN5B-CLIP-ViT-H-14-384_random.safetensors"))
        return m

    def local_bigvgan(*_args, **_kw):
        voc = work / "bigvgan_v2"
        m = BigVGAN(AttrDict(json.loads((voc / "config.json").read_text())), use_cuda_kernel=False)
        m.load_state_dict(torch.load(voc / "bigvgan_generator.pt", map_location="cpu", weights_only=True)["generator"])
        return m

    features_utils.create_model_from_pretrained = local_clip
    autoencoder.BigVGANv2.from_pretrained = local_bigvgan
    net = get_my_mmaudio("small_44k").to("cpu", dtype).eval()
    net.load_weights(torch.load(work / "mmaudio_small_44k.pth", map_location="cpu", weights_only=True))
    fu = features_utils.FeaturesUtils(tod_vae_ckpt=str(work / "v1-44.pth"),
                                      synchformer_ckpt=str(work / "synchformer_state_dict.pth"),
                                      enable_conditions=True, mode="44k", bigvgan_vocoder_ckpt=None,
                                      need_vae_encoder=False).to("cpu", dtype).eval()
    return net, fu, FlowMatching(min_sigma=0, inference_mode="euler", num_steps=25)


@contextlib.contextmanager
def _timed_methods(obj, names: dict[str, str], times: dict[str, float]):
    """Time `obj`'s methods (name -> stage) into `times` while the block runs."""
    originals = {n: getattr(obj, n) for n in names}

    def wrap(n, fn):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[names[n]] = times.get(names[n], 0.0) + time.perf_counter() - t0
        return timed
    for n, fn in originals.items():
        setattr(obj, n, wrap(n, fn))
    try:
        yield
    finally:
        for n in originals:
            delattr(obj, n)  # the instance attribute goes; the class's method shows again


def run_mmaudio(side, eval_utils, video: Path, prompt: str, seed: int) -> tuple[dict[str, float], torch.Tensor]:
    """MMAudio's demo path on one video, timed per stage -> (times, mono waveform [T])."""
    from mmaudio.model.sequence_config import CONFIG_44K
    net, fu, fm = side
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    info = eval_utils.load_video(video, 8.0)
    times["decode"] = time.perf_counter() - t0
    seq = CONFIG_44K
    seq.duration = info.duration_sec
    net.update_seq_lengths(seq.latent_seq_len, seq.clip_seq_len, seq.sync_seq_len)
    stages = {"encode_video_with_clip": "clip", "encode_video_with_sync": "sync", "encode_text": "text",
              "decode": "vae", "vocode": "vocoder"}
    rng = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with _timed_methods(fu, stages, times), torch.inference_mode():
        audio = eval_utils.generate(info.clip_frames[None], info.sync_frames[None], [prompt], negative_text=[""],
                                    feature_utils=fu, net=net, fm=fm, rng=rng, cfg_strength=4.5)
    total = time.perf_counter() - t0
    times["sampling"] = total - sum(times[s] for s in stages.values())
    return times, audio.float().reshape(-1)


def run_ours(pipe, video: Path, prompt: str, seed: int) -> tuple[dict[str, float], torch.Tensor]:
    from .bench_e2e import run_once
    t, wave = run_once(pipe, video, prompt=prompt, steps=25, cfg=4.5, seed=seed)
    times = {"decode": t["decode"], "clip": t["video encoders"], "sync": 0.0, "text": t["text"],
             "sampling": t["sampling"], "vae": t["vae"], "vocoder": t["vocoder"],
             "other": t["stereo"] + t["watermark"]}
    return times, wave


def main(args) -> int:
    from ..pipeline import load_pipeline
    from .bench_e2e import _made_clip
    from .metrics import mel_loss, si_sdr
    eval_utils, features_utils, autoencoder = _import_mmaudio(args.mmaudio_src)
    prompt = "a ball bounces on a hard floor"
    video = args.video or _made_clip(8.0, 256)
    start = time.perf_counter()
    make_weights(args.work, args.seed)
    print(f"weights in {args.work} ({time.perf_counter() - start:.0f} s); video {video}; "
          f"{torch.get_num_threads()} threads", flush=True)
    pipe = load_pipeline(args.work)
    ref_times, ref = run_ours(pipe, video, prompt, args.seed)            # our fp32 run: the deviation's reference
    print(f"ours fp32 (reference, cold): {sum(ref_times.values()):.1f} s ("
          + ", ".join(f"{s} {ref_times[s]:.1f}" for s in STAGES if ref_times.get(s)) + ")", flush=True)
    dtype = pipe.components.apply_precision(args.precision)
    configs = [(f"MMAudio {p}", _mmaudio_side(args.work, torch.float32 if p == "fp32" else torch.bfloat16,
                                              features_utils, autoencoder)) for p in args.mmaudio_precision]
    configs.append((f"ours {args.precision} ({str(dtype).removeprefix('torch.')})", pipe))
    runs: dict[str, list[dict]] = {name: [] for name, _ in configs}
    waves: dict[str, torch.Tensor] = {}
    for r in range(args.repeats + 1):                                    # round 0 warms up
        for name, side in (configs if r % 2 == 0 else configs[::-1]):
            if name.startswith("MMAudio"):
                times, waves[name] = run_mmaudio(side, eval_utils, video, prompt, args.seed)
            else:
                times, waves[name] = run_ours(side, video, prompt, args.seed)
            if r:
                runs[name].append(times)
            stages = ", ".join(f"{s} {times[s]:.1f}" for s in STAGES if times.get(s))
            print(f"round {r} {name}: {sum(times.values()):.1f} s ({stages})", flush=True)
    med = {n: {s: statistics.median(t.get(s, 0.0) for t in rs) for s in STAGES} for n, rs in runs.items()}
    med["ours fp32 (one cold run)"] = {s: ref_times.get(s, 0.0) for s in STAGES}
    names = list(med)
    totals = {n: sum(m.values()) for n, m in med.items()}
    rows = [[s] + [f"{med[n][s]:.2f}" for n in names] for s in STAGES]
    rows.append(["total"] + [f"{totals[n]:.2f}" for n in names])
    ours = configs[-1][0]
    for n in names:
        if n.startswith("MMAudio"):
            rows.append([f"{n} / ours"] + [f"{totals[n] / totals[ours]:.2f}x" if m == ours else "" for m in names])
    cfg = pipe.components.codec.cfg
    rows.append(["ours vs our fp32: log-mel L1"] + [f"{float(mel_loss(ref, waves[ours], cfg).mean()):.3f}"
                                                   if m == ours else "" for m in names])
    rows.append(["ours vs our fp32: SI-SDR dB"] + [f"{float(si_sdr(ref, waves[ours]).mean()):.1f}"
                                                  if m == ours else "" for m in names])
    print(f"8 s clip, MMAudio-S-44k stack, median of {args.repeats} rounds after a warm-up (seconds; "
          "ours' 'clip' holds both video encoders, 'other' Mono2Stereo + watermark):")
    print(format_table(["stage"] + names, rows))
    return 0
