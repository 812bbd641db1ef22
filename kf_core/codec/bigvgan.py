"""BigVGAN-v2 generator: log-mel [B,M,F] -> waveform [B,1,F·hop] (paper §4.6's neural vocoder).

conv_pre (k7) -> per stage: ConvTranspose1d ×u, then the mean of AMP residual blocks (one per
kernel size) -> anti-aliased activation -> conv_post (k7) -> clamp to [-1, 1] (v2 44.1 kHz) or tanh
(the 16 kHz Make-An-Audio 2 vocoder). AMP block type "1": for each dilation d,
x += conv(act(conv_d(act(x)))); type "2": x += conv_d(act(x)).

Weights live here as plain, already-fused `.weight` tensors. Checkpoints with weight norm (NVIDIA's
legacy `weight_g`/`weight_v`, torch's `parametrizations.weight.original0/1`) are fused once by
`fuse_weight_norm` at load: w = g · v / ‖v‖ with the norm over every dim but 0 — for Conv1d that is
per output channel, for ConvTranspose1d (weight [in, out, k]) per INPUT channel.

Shape legend: B batch, M mel bins, F mel frames, D channels, T samples.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .alias_free import FILTER_TAPS, Activation1d, Snake, SnakeBeta

__all__ = ["BigVGANConfig", "BIGVGAN_PRESETS", "BigVGAN", "AMPBlock1", "AMPBlock2", "fuse_weight_norm",
           "detect_bigvgan_config", "bigvgan_config_from_json"]


@dataclass(frozen=True)
class BigVGANConfig:
    """Generator hyper-parameters (names follow NVIDIA's config.json where one exists)."""

    num_mels: int = 128
    upsample_rates: tuple[int, ...] = (8, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = False   # False: clamp to [-1, 1]
    use_bias_at_final: bool = False
    sample_rate: int = 44100

    def __post_init__(self) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            raise ValueError(f"BigVGANConfig: {len(self.upsample_rates)} upsample rates but "
                             f"{len(self.upsample_kernel_sizes)} kernel sizes; give one kernel per rate")
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if u < 1 or k < u or (k - u) % 2:
                raise ValueError(f"BigVGANConfig: upsample kernel {k} with rate {u} does not give an exact "
                                 "×rate length; need kernel >= rate and (kernel - rate) even")
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(f"BigVGANConfig: upsample_initial_channel {self.upsample_initial_channel} must be "
                             f"divisible by 2**{len(self.upsample_rates)} (it halves at every stage)")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError(f"BigVGANConfig: {len(self.resblock_kernel_sizes)} resblock kernels but "
                             f"{len(self.resblock_dilation_sizes)} dilation lists")
        if self.resblock not in ("1", "2"):
            raise ValueError(f"BigVGANConfig.resblock must be '1' or '2', got {self.resblock!r}")
        if self.activation not in ("snake", "snakebeta"):
            raise ValueError(f"BigVGANConfig.activation must be 'snake' or 'snakebeta', got {self.activation!r}")
        if self.num_mels <= 0 or self.sample_rate <= 0:
            raise ValueError(f"BigVGANConfig: num_mels ({self.num_mels}) and sample_rate must be positive")

    @property
    def hop(self) -> int:
        """Samples per mel frame (the product of the upsample rates)."""
        return math.prod(self.upsample_rates)

    @property
    def context_frames(self) -> int:
        """Mel frames on each side that can change an output sample: an upper bound on the receptive
        field (conv_pre, each transposed conv, the widest AMP block, the anti-aliased activations)."""
        act = FILTER_TAPS  # one Activation1d: up-filter pad + down-filter half at 2x, in stage samples
        field, rate = 3.0, 1  # conv_pre (k7), in mel frames
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            field += math.ceil(k / u) / rate                               # transposed conv, previous rate
            rate *= u
            per = [sum((kk - 1) // 2 * d + ((kk - 1) // 2 + act if self.resblock == "1" else 0) + act for d in ds)
                   for kk, ds in zip(self.resblock_kernel_sizes, self.resblock_dilation_sizes)]
            field += max(per) / rate
        field += (act + 3) / rate                                          # activation_post, conv_post
        return math.ceil(field) + 1

    def channels(self, stage: int) -> int:
        """Channels after upsampling stage `stage` (stage -1: after conv_pre)."""
        return self.upsample_initial_channel // 2 ** (stage + 1)


BIGVGAN_PRESETS: dict[str, BigVGANConfig] = {
    # nvidia/bigvgan_v2_44khz_128band_512x (used by MMAudio 44k), 122 M parameters.
    "44k": BigVGANConfig(),
    # Make-An-Audio 2's 16 kHz vocoder (BigVGAN v1 code): tanh output, biased conv_post.
    "16k": BigVGANConfig(num_mels=80, upsample_rates=(4, 4, 2, 2, 2, 2), upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
                         use_tanh_at_final=True, use_bias_at_final=True, sample_rate=16000),
    # kf-tiny: 44.1 kHz / 128 bands / hop 512 in three ×8 stages, CPU-sized.
    "tiny": BigVGANConfig(upsample_rates=(8, 8, 8), upsample_kernel_sizes=(16, 16, 16), upsample_initial_channel=64,
                          resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3), (1, 3))),
}


def _act(cfg: BigVGANConfig, channels: int) -> Activation1d:
    kind = SnakeBeta if cfg.activation == "snakebeta" else Snake
    return Activation1d(kind(channels, log_scale=cfg.snake_logscale))


class AMPBlock1(nn.Module):
    """x [B,D,T] -> [B,D,T]: per dilation d, x += conv2(act(conv1_d(act(x))))."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                    for _ in dilations)
        # Checkpoint order interleaves them: activations.0/2/4 precede convs1, 1/3/5 precede convs2.
        self.activations = nn.ModuleList(_act(cfg, channels) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # c1's output is needed by nothing but a2, so a2 may write into it; the sum goes into c2's
        # output (a + b == b + a exactly): fewer tensors of the stage's size, each costing page faults
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations[0::2], self.activations[1::2]):
            x = c2(a2(c1(a1(x)), reuse_input=True)).add_(x)                    # B D T
        return x


class AMPBlock2(nn.Module):
    """x [B,D,T] -> [B,D,T]: per dilation d, x += conv_d(act(x))."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                   for d in dilations)
        self.activations = nn.ModuleList(_act(cfg, channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.activations):
            x = conv(act(x)).add_(x)                                           # B D T
        return x


class BigVGAN(nn.Module):
    """Log-mel [B,M,F] -> waveform [B,1,F·hop] in [-1, 1]."""

    def __init__(self, cfg: BigVGANConfig = BIGVGAN_PRESETS["44k"]) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, c0, 7, padding=3)
        # ups.{i}.0: NVIDIA wraps each ConvTranspose in a ModuleList; kept for key compatibility.
        self.ups = nn.ModuleList(
            nn.ModuleList([nn.ConvTranspose1d(cfg.channels(i - 1), cfg.channels(i), k, stride=u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)))
        block = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        self.resblocks = nn.ModuleList(
            block(cfg, cfg.channels(i), k, tuple(d))
            for i in range(len(cfg.upsample_rates))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
        last = cfg.channels(len(cfg.upsample_rates) - 1)
        self.activation_post = _act(cfg, last)
        self.conv_post = nn.Conv1d(last, 1, 7, padding=3, bias=cfg.use_bias_at_final)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def context_frames(self) -> int:
        return self.cfg.context_frames

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B,M,F] (natural-log mel for the 44.1 kHz model) -> wave [B,1,F·hop]."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.num_mels:
            raise ValueError(f"BigVGAN expects a mel of shape [B, {self.cfg.num_mels}, F], got {tuple(mel.shape)}")
        n_kernels = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(mel)                                                 # B D0 F
        for i, up in enumerate(self.ups):
            x = up[0](x)                                                       # B Di T_i
            blocks = self.resblocks[i * n_kernels:(i + 1) * n_kernels]
            acc = blocks[0](x)
            for b in blocks[1:]:
                acc = acc.add_(b(x))
            x = acc.div_(n_kernels)                                            # B Di T_i: their mean
        x = self.conv_post(self.activation_post(x))                            # B 1 T
        return torch.tanh(x) if self.cfg.use_tanh_at_final else x.clamp(-1.0, 1.0)


# ---------------------------------------------------------------------------------- checkpoint layouts

_G_SUFFIXES = (".weight_g", ".parametrizations.weight.original0")
_V_SUFFIXES = (".weight_v", ".parametrizations.weight.original1")


def fuse_weight_norm(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State dict with weight-norm pairs (g, v) -> the same dict with plain `<conv>.weight` = g·v/‖v‖.

    Accepts NVIDIA's legacy `weight_g`/`weight_v` and torch's parametrised `original0/original1`
    names; plain `.weight` entries pass through. The norm runs over every dim except 0 (g's
    non-singleton dim), in float32.
    """
    out: dict[str, torch.Tensor] = {}
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        for slot, suffixes in (("g", _G_SUFFIXES), ("v", _V_SUFFIXES)):
            # "<module>.weight_g", or bare "weight_g" for a single conv's own state dict
            hit = next((s for s in suffixes if k.endswith(s) or k == s[1:]), None)
            if hit is not None:
                pending.setdefault(k[:-len(hit)] if k != hit[1:] else "", {})[slot] = v
                break
        else:
            out[k] = v
    for prefix, pair in pending.items():
        if set(pair) != {"g", "v"}:
            have = "g" if "g" in pair else "v"
            raise ValueError(f"weight-norm pair for {prefix!r} is incomplete: found only its {have} tensor; "
                             "the checkpoint is damaged or was edited")
        name = f"{prefix}.weight" if prefix else "weight"
        if name in out:
            raise ValueError(f"{prefix!r} has both a plain weight and a weight-norm pair; keep one of them")
        g, v = pair["g"].float(), pair["v"].float()
        norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
        out[name] = (v * (g / norm)).to(pair["v"].dtype)
    return out


def bigvgan_config_from_json(cfg: Mapping) -> BigVGANConfig:
    """NVIDIA config.json values -> BigVGANConfig (unknown keys such as training settings are ignored)."""
    kw: dict = {}
    for name in ("num_mels", "upsample_initial_channel", "activation", "snake_logscale",
                 "use_tanh_at_final", "use_bias_at_final"):
        if name in cfg:
            kw[name] = cfg[name]
    for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
        if name in cfg:
            kw[name] = tuple(int(v) for v in cfg[name])
    if "resblock_dilation_sizes" in cfg:
        kw["resblock_dilation_sizes"] = tuple(tuple(int(d) for d in ds) for ds in cfg["resblock_dilation_sizes"])
    if "resblock" in cfg:
        kw["resblock"] = str(cfg["resblock"])
    if "sampling_rate" in cfg:
        kw["sample_rate"] = int(cfg["sampling_rate"])
    # BigVGAN v1 configs (the 16 kHz vocoder) predate the flags: tanh output and a biased conv_post.
    kw.setdefault("use_tanh_at_final", True)
    kw.setdefault("use_bias_at_final", True)
    return BigVGANConfig(**kw)


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return max(idx) + 1 if idx else 0


def detect_bigvgan_config(sd: Mapping[str, torch.Tensor]) -> BigVGANConfig:
    """Fused generator state dict -> the BigVGANConfig its shapes describe.

    Shapes cannot tell upsample strides, dilations, snake log-scale or tanh-vs-clamp; they are
    taken as the published models have them: stride = kernel / 2, dilations (1, 3, 5)[:n],
    log-scale snake, and tanh only for 80-band (16 kHz, BigVGAN v1) models. Give the model's
    config.json when it differs.
    """
    c0, num_mels, _ = sd["conv_pre.weight"].shape
    n_up = _count(sd, "ups.")
    kernels = tuple(int(sd[f"ups.{i}.0.weight"].shape[-1]) for i in range(n_up))
    n_res = _count(sd, "resblocks.")
    if n_up == 0 or n_res % n_up:
        raise ValueError(f"{n_res} AMP blocks cannot be split over {n_up} upsampling stages")
    per_stage = n_res // n_up
    type1 = "resblocks.0.convs1.0.weight" in sd
    conv = "convs1" if type1 else "convs"
    res_kernels = tuple(int(sd[f"resblocks.{j}.{conv}.0.weight"].shape[-1]) for j in range(per_stage))
    dil = tuple(tuple((1, 3, 5, 7, 9)[:_count(sd, f"resblocks.{j}.{conv}.")]) for j in range(per_stage))
    tanh = num_mels == 80
    return BigVGANConfig(
        num_mels=int(num_mels), upsample_rates=tuple(k // 2 for k in kernels), upsample_kernel_sizes=kernels,
        upsample_initial_channel=int(c0), resblock="1" if type1 else "2", resblock_kernel_sizes=res_kernels,
        resblock_dilation_sizes=dil,
        activation="snakebeta" if "activation_post.act.beta" in sd else "snake",
        use_tanh_at_final=tanh, use_bias_at_final="conv_post.bias" in sd,
        sample_rate=16000 if num_mels == 80 else 44100)

