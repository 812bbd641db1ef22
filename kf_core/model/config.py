"""`ModelConfig`: every size and behavioural option of the MM-DiT, plus the `PRESETS` registry.

One class expresses both the Kling-Foley networks (paper §3–4, §6.2) and MMAudio's public flow
networks (docs MMAUDIO.md §1). Where the two differ, the difference is a *named* option here,
never a fork in the model code:

| option                  | Kling-Foley presets          | MMAudio                                    |
|-------------------------|------------------------------|--------------------------------------------|
| text_pool               | "masked_mean"                | "mean" (all 77 positions, padding included) |
| text_attention_mask     | True (padding masked)        | False                                      |
| final_cond              | "extended" (sees sync)       | "global" (MMAudio issue #55 quirk)         |
| sync_upsample           | "segments" (frame-aligned)   | "nearest-exact" (tokens spread evenly)     |
| duration_embedding      | True (paper §4.2)            | False                                      |
| input_activation        | "silu"                       | v1 "selu", v2 "silu"                        |
| linear_proj_activation  | True                         | v1 False, v2 True                           |
| t_freq_dim / t_max_period | 256 / 10000                | v1 256 / 10000, v2 D / 1 (gotcha G5)        |
| empty_text_len          | 1 (one learned e_t token)    | 77 (`empty_string_feat`)                    |
"""
from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["ModelConfig", "PRESETS", "HEAD_DIM", "swiglu_hidden"]

HEAD_DIM = 64  # paper §6.2 and MMAudio: d_hidden = 64 * heads


def swiglu_hidden(dim: int, ratio: float, multiple: int) -> int:
    """SwiGLU hidden width: int(2/3 * ratio * dim) rounded UP to `multiple` (MMAudio's rule)."""
    h = int(2 * int(ratio * dim) / 3)
    return multiple * ((h + multiple - 1) // multiple)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and options of one MM-DiT. Sequence lengths are not here: they come from `SeqConfig`."""

    name: str = "custom"
    latent_dim: int = 40             # C, audio latent channels
    num_heads: int = 17              # H; hidden D = 64 * H
    num_joint: int = 6               # N1 joint (audio, visual, text) blocks
    num_single: int = 17             # N2 audio-only blocks
    text_dim: int = 768              # T5-Base
    visual_dim: int = 1280           # MetaCLIP ViT-bigG-14 image embedding
    sync_dim: int = 768              # Synchformer
    text_len: int = 77               # the most text tokens accepted (Lt <= text_len)
    sync_tokens_per_segment: int = 8
    mlp_ratio: float = 4.0
    mlp_multiple: int = 256          # SwiGLU hidden rounded up to this
    # conv kernels (1 = plain Linear / MLP)
    audio_in_kernel: int = 7         # audio input conv and its ConvMLP
    sync_in_kernel: int = 7          # sync input conv (its ConvMLP uses visual_kernel)
    visual_kernel: int = 3           # visual input ConvMLP and visual stream convs
    audio_kernel: int = 3            # audio stream convs (joint and single blocks)
    text_kernel: int = 1
    final_kernel: int = 7
    # behaviour (see the module docstring)
    input_activation: str = "silu"
    linear_proj_activation: bool = True
    t_freq_dim: int = 256
    t_max_period: float = 10000.0
    text_pool: str = "masked_mean"
    text_attention_mask: bool = True
    final_cond: str = "extended"
    sync_upsample: str = "nearest-exact"
    duration_embedding: bool = True
    max_seconds: int = 30            # per-second embedding table covers 0..max_seconds
    empty_text_len: int = 1
    pre_only_last_joint: bool = True  # the last joint block's visual/text outputs are unused
    rope_theta: float = 10000.0
    codec: str = "44k"               # CODEC_PRESETS key whose rates the network was trained at

    def __post_init__(self) -> None:
        positive = {k: getattr(self, k) for k in (
            "latent_dim", "num_heads", "text_dim", "visual_dim", "sync_dim", "text_len",
            "sync_tokens_per_segment", "mlp_multiple", "t_freq_dim", "empty_text_len", "max_seconds")}
        bad = {k: v for k, v in positive.items() if v <= 0}
        if bad:
            raise ValueError(f"ModelConfig {self.name!r}: these must be positive: {bad}")
        if self.num_joint < 1 or self.num_single < 0:
            raise ValueError(f"ModelConfig {self.name!r}: need num_joint >= 1 and num_single >= 0, "
                             f"got {self.num_joint} and {self.num_single}")
        kernels = {k: getattr(self, k) for k in ("audio_in_kernel", "sync_in_kernel", "visual_kernel",
                                                  "audio_kernel", "text_kernel", "final_kernel")}
        even = {k: v for k, v in kernels.items() if v < 1 or v % 2 == 0}
        if even:
            raise ValueError(f"ModelConfig {self.name!r}: conv kernels must be odd and >= 1 "
                             f"(same-length padding), got {even}")
        if self.t_freq_dim % 2:
            raise ValueError(f"ModelConfig {self.name!r}: t_freq_dim must be even, got {self.t_freq_dim}")
        choices = {"input_activation": ("silu", "selu"), "text_pool": ("masked_mean", "mean"),
                   "final_cond": ("global", "extended"), "sync_upsample": ("nearest-exact", "linear", "segments"),
                   "codec": ("44k", "16k")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"ModelConfig {self.name!r}: {key} must be one of {allowed}, "
                                 f"got {getattr(self, key)!r}")
        if self.empty_text_len > self.text_len:
            raise ValueError(f"ModelConfig {self.name!r}: empty_text_len ({self.empty_text_len}) exceeds "
                             f"text_len ({self.text_len})")
        if not self.text_attention_mask and self.text_pool == "masked_mean":
            raise ValueError(f"ModelConfig {self.name!r}: text_pool='masked_mean' needs "
                             "text_attention_mask=True (a mask that pools but does not attend is inconsistent)")

    @property
    def hidden_dim(self) -> int:  # D
        return HEAD_DIM * self.num_heads

    @property
    def head_dim(self) -> int:
        return HEAD_DIM

    @property
    def depth(self) -> int:
        return self.num_joint + self.num_single

    @property
    def mlp_hidden(self) -> int:
        return swiglu_hidden(self.hidden_dim, self.mlp_ratio, self.mlp_multiple)

    def with_(self, **changes) -> "ModelConfig":
        """A validated copy with `changes` applied."""
        return replace(self, **changes)


# Paper presets (§6.2): head dim 64, d_hidden = 64 * heads. The paper does not give the N1/N2
# split. A joint block (three streams, k3 convs on audio and visual) costs about 2.5x a single
# audio-only block, so the joint count sets the size at fixed depth. We put about a quarter of
# the depth in joint blocks (MMAudio-L uses a third) and fill the rest with cheaper audio-only
# blocks (paper §4.1: deeper at the same parameters): N1/N2 = 6/17, 5/22, 6/21 give
# 1.527 B / 2.964 B / 5.915 B on `meta` (tests/test_presets.py checks the 10 % bands).
_PAPER = ModelConfig(name="kf-paper", latent_dim=40, text_dim=768, visual_dim=1280, sync_dim=768,
                     sync_upsample="segments")

PRESETS: dict[str, ModelConfig] = {
    "kf-1.5b": _PAPER.with_(name="kf-1.5b", num_heads=17, num_joint=6, num_single=17),
    "kf-3b": _PAPER.with_(name="kf-3b", num_heads=23, num_joint=5, num_single=22),
    "kf-6b": _PAPER.with_(name="kf-6b", num_heads=32, num_joint=6, num_single=21),
    # kf-tiny: the shipped default, trained on 2 CPU cores (DESIGN §6; kf_core/assets/kf-tiny). Its
    # interface dims are fixed by the tiny encoders/codec (text/visual/sync 128, C 16). D = 128
    # (2 heads), 2 joint + 2 single blocks, a SwiGLU hidden of 384, point-wise block MLPs (kernel 1)
    # and kernel-3 audio/sync input and output convs: 3.3 M parameters. On 2 CPU cores the kernel-3/7
    # ConvMLPs held ~85 % of the FLOPs, and the point-wise variant trains 1.7x faster (batch 12 x
    # 5.5 s: 0.45 s vs 0.75 s per step), so an hour buys more steps. Sync tokens are placed at the
    # times their frames show: with MMAudio's even spreading, a DiT trained for 2000 steps — even one
    # given exact onset times in its sync features — made no use of the video.
    "kf-tiny": ModelConfig(name="kf-tiny", latent_dim=16, num_heads=2, num_joint=2, num_single=2,
                           text_dim=128, visual_dim=128, sync_dim=128, mlp_multiple=128,
                           audio_in_kernel=3, sync_in_kernel=3, visual_kernel=1, audio_kernel=1,
                           final_kernel=3, sync_upsample="segments"),
}
