"""The loaded pieces of a Foley model and how a model folder becomes them.

`load_components(name_or_dir)` reads a model folder (docs/ENGINE.md "model folders"): the bundled
kf-tiny in `kf_core/assets/kf-tiny/`, or a folder a user assembled (Kling-Foley exports or
MMAudio's released files). Every file goes through its own area's loader, which detects the
architecture from tensor shapes and raises a clear error for a wrong kind of file. Loaders build
on the CPU; `Components.to(device)` moves them when sampling starts.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .codec.bundle import AudioCodec, codec_from_roles
from .errors import MissingFileError, UserError
from .loading.state import CheckpointError, file_in_folder, read_json

__all__ = ["DiT", "SamplingDefaults", "TextEncoder", "VisualEncoders", "Components", "load_components",
           "dit_from_file", "text_encoder_from_file", "visual_encoders_from_files", "codec_from_roles",
           "BUNDLED_DIR", "ROLES", "MMAUDIO_WINDOW", "FRAME_TIMING"]

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "assets" / "kf-tiny"
ROLES = ("dit", "vae", "mono2stereo", "vocoder", "text_encoder", "clip", "synchformer")
MMAUDIO_WINDOW = 8.0  # s: the clip length MMAudio's networks were trained on (345 / 64 / 192 tokens)
# how each model family's frames are picked by time (kf_core.io.frames, module doc)
FRAME_TIMING = {"kling-foley": "on_screen", "mmaudio": "mmaudio"}
# CLIP image models whose frames are timed MMAudio's way when no network says otherwise (DFN5B)
_MMAUDIO_CLIP = ("ViT-H-14-378-quickgelu",)


@dataclass(frozen=True)
class SamplingDefaults:
    """What a sampler uses when a workflow leaves steps / cfg unset (None or 0 in the nodes)."""

    steps: int
    cfg: float

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"SamplingDefaults.steps must be an integer >= 1, got {self.steps!r}")
        if not (isinstance(self.cfg, (int, float)) and self.cfg == self.cfg and abs(self.cfg) < float("inf")):
            raise ValueError(f"SamplingDefaults.cfg must be a finite number, got {self.cfg!r}")


# MMAudio's demo / inference: 25 Euler steps, CFG 4.5; Kling-Foley (paper §6.2): 20 Euler steps
_DEFAULTS = {"mmaudio": SamplingDefaults(steps=25, cfg=4.5), "kling-foley": SamplingDefaults(steps=20, cfg=4.5)}


@dataclass
class DiT:
    """A flow network plus what its file said (layout, variant, latent statistics)."""

    model: nn.Module
    info: object  # kf_core.loading.dit.DiTInfo

    @property
    def family(self) -> str:
        """"mmaudio" (MMAudio's released networks and their layout) or "kling-foley"."""
        return "mmaudio" if getattr(self.info, "layout", None) == "mmaudio" else "kling-foley"

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        """Steps and CFG scale to use when the caller gives none (MMAudio 25 / 4.5, Kling-Foley 20 / 4.5)."""
        return _DEFAULTS[self.family]

    @property
    def frame_timing(self) -> str:
        """The frame-timing policy its video features were made with (kf_core.io.frames)."""
        return FRAME_TIMING[self.family]

    @property
    def max_duration(self) -> float | None:
        """Longest clip (s) the model takes in one pass: its duration-embedding table, if any."""
        cfg = self.model.cfg
        return float(cfg.max_seconds) if cfg.duration_embedding else None

    @property
    def window(self) -> float | None:
        """Seconds per window when a longer clip is sampled in windows by default: MMAudio's
        trained 8 s (it has no duration embedding), else `max_duration`."""
        return MMAUDIO_WINDOW if self.family == "mmaudio" else self.max_duration

    def network_duration(self, duration: float) -> float:
        """Clip length (s) -> the length to run the network at, >= it (the audio is trimmed back).

        MMAudio spreads the sync tokens evenly over the audio tokens (nearest-exact), so its sync
        features must cover the audio: the clip is padded to whole Synchformer segments
        (0.64 + 0.32·k s: 8 s stays 8 s, 7.96 s becomes 8 s, 5.1 s becomes 5.12 s). Kling-Foley
        places sync tokens by time and runs at the exact length.
        """
        from .config import SeqConfig
        if self.family != "mmaudio":
            return float(duration)
        seq = SeqConfig(duration)
        stride = seq.sync_stride / seq.sync_fps                          # 0.32 s
        k = max(0, math.ceil(round((duration - seq.min_duration) / stride, 9)))
        return round(seq.min_duration + k * stride, 9)


@dataclass
class TextEncoder:
    """T5 (Kling-Foley: features + padding mask) or CLIP per-token text (MMAudio: no mask)."""

    encoder: nn.Module
    kind: str  # "t5" | "clip"

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompts -> (features [B,Lt,Dt], mask [B,Lt] bool or None)."""
        with torch.inference_mode():
            out = self.encoder.encode(prompts)
        return out if isinstance(out, tuple) else (out, None)

    @property
    def empty_policy(self) -> str:
        """What an empty prompt becomes: "encode" (CLIP(''), MMAudio's inference) or "learned"
        (the network's learned empty text, Kling-Foley's e_t)."""
        return "encode" if self.kind == "clip" else "learned"

    def empty(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The encoded empty prompt (features [1,Lt,Dt], mask), cached by CLIP text encoders."""
        if hasattr(self.encoder, "empty"):
            with torch.inference_mode():
                return self.encoder.empty(), None
        return self.encode([""])


@dataclass
class VisualEncoders:
    """CLIP-family image encoder (8 fps) + Synchformer (25 fps), and how their frames are picked
    by time (`timing`, kf_core.io.frames): None = from the CLIP model (DFN5B, MMAudio's: "mmaudio";
    others "on_screen"); `load_components` sets it from the network's family."""

    clip: nn.Module
    sync: nn.Module
    timing: str | None = None

    def __post_init__(self) -> None:
        if self.timing is None:
            self.timing = "mmaudio" if getattr(self.clip, "name", "") in _MMAUDIO_CLIP else "on_screen"
        if self.timing not in FRAME_TIMING.values():
            raise ValueError(f"VisualEncoders.timing must be one of {sorted(set(FRAME_TIMING.values()))}, "
                             f"got {self.timing!r}")

    @property
    def visual_input_size(self) -> int:
        spec = self.clip.spec
        return spec.resize_to or spec.image_size

    @property
    def sync_input_size(self) -> int:
        return self.sync.cfg.image_size

    @property
    def segments_independent(self) -> bool:
        """Each sync segment's features depend on its own 16 frames only (RGB input; a motion
        frontend differences frames across segment starts), so a clip may be encoded in pieces."""
        return getattr(self.sync.cfg, "frontend", "rgb") == "rgb"

    @property
    def sync_resize(self) -> str:
        """How frames are fitted to the sync encoder's square input: "crop" or "squash"."""
        return self.sync.cfg.resize

    def encode(self, visual_u8: torch.Tensor, sync_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames [Tv,3,S,S], [Ts,3,S',S'] -> visual [1,Lv,Dv], sync [1,Ls,Ds]."""
        from .encoders import sync_frames_from_uint8
        with torch.inference_mode():
            p = next(self.clip.parameters())
            visual = self.clip.encode_frames(visual_u8.to(p.device))[None]       # 1 Lv Dv
            s = next(self.sync.parameters())
            frames = sync_frames_from_uint8(sync_u8.to(s.device)).to(s.dtype)[None]  # 1 Ts 3 S S
            sync = self.sync.encode_video(frames)                                # 1 Ls Ds
        return visual.float(), sync.float()


@dataclass
class Components:
    name: str
    dit: DiT
    text_encoder: TextEncoder
    visual_encoders: VisualEncoders
    codec: AudioCodec
    files: dict[str, Path] = field(default_factory=dict)

    def modules(self) -> list[nn.Module]:
        return [self.dit.model, self.text_encoder.encoder, self.visual_encoders.clip,
                self.visual_encoders.sync, self.codec]

    def to(self, device=None, dtype=None) -> "Components":
        """Move every module (dtype applies to the DiT only; codec and encoders stay float32)."""
        self.dit.model.to(device=device, dtype=dtype)
        for m in self.modules()[1:]:
            m.to(device=device)
        return self

    def cast(self, dtype: torch.dtype) -> "Components":
        """The networks that compute in `dtype` (`kf_core.precision`): DiT, text encoder, CLIP,
        Synchformer, Mel-VAE. The vocoder and Mono2Stereo stay float32, and so does the text encoder
        under float16 (T5's activations overflow fp16's range; it runs once per prompt anyway)."""
        text = () if dtype == torch.float16 else (self.text_encoder.encoder,)
        for m in (self.dit.model, *text, self.visual_encoders.clip, self.visual_encoders.sync, self.codec.vae):
            m.to(dtype=dtype)
        return self

    def dit_params(self) -> int:
        return sum(p.numel() for p in self.dit.model.parameters())

    def apply_precision(self, precision: str) -> torch.dtype:
        """"auto" | "fp32" | "bf16" | "fp16" -> the dtype `kf_core.precision.pick_dtype` gives for this DiT on
        its device, with the networks cast to it (`cast`; loaders build in float32, so float32 leaves them
        untouched, buffers of other dtypes included)."""
        from .precision import pick_dtype
        dtype = pick_dtype(precision, next(self.dit.model.parameters()).device, self.dit_params())
        if dtype != torch.float32:
            self.cast(dtype)
        return dtype


# ---------------------------------------------------------------- model folders
def _missing_bundle_error(folder: Path) -> FileNotFoundError:
    return MissingFileError(
        f"The bundled kf-tiny weights are not in this install ({folder / 'manifest.json'} is missing). "
        "Reinstall the node pack from its repository (the weights ship with it), train them with "
        f"`python -m kf_core train-tiny --out {folder}`, or give a model folder.")


def _detect_roles(folder: Path) -> dict[str, Path]:
    """Weight files in `folder` (and NVIDIA-style vocoder sub-folders) -> {role: path} by content."""
    from .encoders import detect_kind, read_keys
    from .loading.state import WEIGHT_SUFFIXES
    roles: dict[str, Path] = {}
    kind_to_role = {"flow_network": "dit", "vae": "vae", "vocoder": "vocoder", "t5": "text_encoder",
                    "clip": "clip", "synchformer": "synchformer"}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file()):
        roles.setdefault("vocoder" if any(sub.glob("*generator*")) else "text_encoder", sub)
    for path in files:
        keys = read_keys(path)
        kind = detect_kind(keys)
        if kind is None and any(k.startswith("pan_net.") or "mono2stereo" in k for k in keys):
            kind = "mono2stereo"
        role = kind_to_role.get(kind, kind)
        if role is None:
            log.warning("ignoring %s: not a recognised model file", path.name)
            continue
        if role in roles:
            raise UserError(f"{folder} holds two {role} files ({roles[role].name}, {path.name}); "
                             "keep one, or name them in a manifest.json")
        roles[role] = path
    return roles


def _read_manifest(folder: Path) -> tuple[dict, dict[str, Path]]:
    """folder/manifest.json -> (its fields, {role: path inside the folder}); errors name the file and entry."""
    where = folder / "manifest.json"
    manifest = read_json(where, what="model manifest")
    components = manifest.get("components", {})
    if not isinstance(components, dict):
        raise CheckpointError(f"{where}: \"components\" must be an object mapping roles to file names, "
                              f"e.g. {{\"dit\": \"dit.safetensors\"}}; found {type(components).__name__}")
    for key in ("name", "codec", "clip_model", "text_tokenizer"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            raise CheckpointError(f"{where}: \"{key}\" must be text, found {manifest[key]!r}")
    roles = {}
    for role, name in components.items():
        if role not in ROLES:
            raise CheckpointError(f"{where}: unknown component {role!r}; expected {ROLES}")
        if name:
            path = file_in_folder(folder, name, where=str(where), what=role)
            if not path.exists():
                raise MissingFileError(f"{where} names {name} for {role}, but the file is missing; restore it "
                                       "or fix the manifest")
            roles[role] = path
    if manifest.get("text_tokenizer") not in (None, "byt5"):
        file_in_folder(folder, manifest["text_tokenizer"], where=str(where), what="text_tokenizer")
    return manifest, roles


def dit_from_file(path: Path, *, device=None, dtype=None) -> DiT:
    """A DiT / MMAudio network file -> DiT (kind and variant detected from its tensors)."""
    from .loading.dit import load_dit
    return DiT(*load_dit(path, device=device, dtype=dtype))


def text_encoder_from_file(path: Path, *, tokenizer: Path | str | None = None,
                           clip_model: str | None = None) -> TextEncoder:
    """A T5 folder/file (tokenizer: a folder, or "byt5" for kf-tiny's byte tokenizer) or, for MMAudio
    networks, the CLIP file whose text tower gives per-token features -> TextEncoder."""
    from .encoders import ClipTextEncoder, T5TextEncoder, detect_kind, read_keys
    path = Path(path)
    if path.is_file() and detect_kind(read_keys(path)) == "clip":
        enc = ClipTextEncoder.from_file(path, clip_model or "ViT-H-14-378-quickgelu")
        return TextEncoder(enc.eval(), "clip")
    if tokenizer == "byt5" and path.is_file():
        from transformers import ByT5Tokenizer
        from .loading.state import read_state_dict
        enc = T5TextEncoder.from_state_dict(read_state_dict(path), ByT5Tokenizer(), what=path.name)
    else:
        enc = T5TextEncoder.from_pretrained(path, tokenizer=tokenizer)
    return TextEncoder(enc.eval(), "t5")


def visual_encoders_from_files(clip_path: Path, sync_path: Path, *, clip_model: str | None = None,
                               timing: str | None = None) -> VisualEncoders:
    """An open_clip image model file + a Synchformer file -> VisualEncoders (timing: see VisualEncoders)."""
    from .encoders import ClipVisionEncoder, Synchformer
    return VisualEncoders(ClipVisionEncoder.from_file(clip_path, clip_model).eval(),
                          Synchformer.from_file(sync_path).eval(), timing)


def _tokenizer_for(path: Path, folder: Path, manifest: dict):
    """Which tokenizer a T5 file uses: the manifest's, a tokenizer beside it, or ByT5's for a
    384-entry (byte) vocabulary; a UserError saying what to add when none fits."""
    tok = manifest.get("text_tokenizer")
    if tok is not None:
        return tok if tok == "byt5" else folder / tok
    if path.is_dir():
        return None  # a Hugging Face folder carries its own
    from .encoders.t5 import has_tokenizer_files, t5_vocab_size
    if has_tokenizer_files(folder):
        return folder
    if t5_vocab_size(path) == 384:  # ByT5's byte vocabulary (kf-tiny): no files needed
        return "byt5"
    raise UserError(f"{path.name} in {folder} holds T5 weights without a tokenizer: copy the tokenizer files "
                    "(tokenizer.json or spiece.model, and tokenizer_config.json) from the model's Hugging Face "
                    "folder into the model folder, or add a manifest.json with \"text_tokenizer\": \"FOLDER\"")


def _text_encoder_for(roles: dict[str, Path], manifest: dict, folder: Path) -> TextEncoder:
    if "text_encoder" in roles:
        return text_encoder_from_file(roles["text_encoder"],
                                      tokenizer=_tokenizer_for(roles["text_encoder"], folder, manifest))
    if "clip" in roles:
        return text_encoder_from_file(roles["clip"], clip_model=manifest.get("clip_model"))
    raise MissingFileError(f"{folder} has no text encoder: add a T5 folder/file, or the CLIP file for "
                           "MMAudio networks")


def load_components(name_or_dir=None, device=None, dtype=None) -> Components:
    """None / "kf-tiny" (the bundled model) or a model folder -> Components on `device`.

    The folder's manifest.json names one file per role (docs/ENGINE.md); without one, files are
    recognised by their tensors. Every file is loaded strictly by its own loader.
    """
    bundled = name_or_dir in (None, "kf-tiny")
    folder = BUNDLED_DIR if bundled else Path(name_or_dir)
    if bundled and not (folder / "manifest.json").is_file():
        raise _missing_bundle_error(folder)
    if not folder.is_dir():
        raise MissingFileError(f"model folder not found: {folder} (give a folder holding the model files, "
                               "or nothing for the bundled kf-tiny)")
    if (folder / "manifest.json").is_file():
        manifest, roles = _read_manifest(folder)
    else:
        manifest, roles = {}, _detect_roles(folder)
    for role in ("dit", "vae", "clip", "synchformer"):
        if role not in roles:
            found = ", ".join(f"{r}={p.name}" for r, p in roles.items()) or "no model files"
            raise MissingFileError(f"{folder} has no {role} file (found {found}); see the README's model "
                                   "files table for what each folder needs")
    dit = dit_from_file(roles["dit"])
    info = dit.info
    if info.latent_mean is None or info.latent_std is None:
        raise UserError(f"{roles['dit'].name} carries no latent statistics (latent_mean/latent_std); "
                         "export it with kf_core.loading.dit.save_dit(..., latent_mean=, latent_std=)")
    codec = codec_from_roles(roles, preset=manifest.get("codec", dit.model.cfg.codec),
                             latent_mean=info.latent_mean, latent_std=info.latent_std)
    comps = Components(name=manifest.get("name", folder.name), dit=dit,
                       text_encoder=_text_encoder_for(roles, manifest, folder),
                       visual_encoders=visual_encoders_from_files(roles["clip"], roles["synchformer"],
                                                                  clip_model=manifest.get("clip_model"),
                                                                  timing=dit.frame_timing),
                       codec=codec, files=roles)
    if device is not None or dtype is not None:
        comps.to(device, dtype)
    return comps
