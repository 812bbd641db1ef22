"""T5 text encoder (paper §3.1: T5-Base) through `transformers`, loaded from local files only.

`T5TextEncoder.from_pretrained(folder)` reads a Hugging Face folder (config.json, weights,
tokenizer files); `from_pretrained(file.safetensors, tokenizer=folder)` reads one weight file and
infers the T5 configuration from its tensor shapes. Encoder-only use of a full T5 checkpoint is
fine: `decoder.*` and `lm_head.*` are dropped, every encoder key is loaded strictly.
`T5TextEncoder.tiny()` is the same architecture at width 128 with a byte-level tokenizer
(ByT5's, which needs no files) and deterministic random weights.

Shape legend: B prompts, Lt text tokens (= max_length, padded), D model width.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingFileError, UserError
from ..loading.state import CheckpointError, file_in_folder, load_strict, read_json, read_state_dict
from .seeded import seeded_init_

__all__ = ["T5TextEncoder", "detect_t5_config", "TINY_T5"]

log = logging.getLogger(__name__)

_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")
_DROPPED_PREFIXES = ("decoder.", "lm_head.")
TINY_T5 = dict(vocab_size=384, d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4,
               feed_forward_proj="relu")  # T5-Base's family (ReLU FFN), ByT5's 384-entry vocabulary


def detect_t5_config(sd: dict[str, torch.Tensor], *, what: str = "checkpoint"):
    """T5 encoder state dict -> transformers.T5Config inferred from tensor shapes.

    v1.1-style gated FFNs (`wi_0`/`wi_1`) mean "gated-gelu"; a single `wi` means the original ReLU.
    The relative-attention max distance cannot be seen in the weights; T5's 128 is used.
    """
    from transformers import T5Config
    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    rel = sd.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    q = sd.get("encoder.block.0.layer.0.SelfAttention.q.weight")
    if emb is None or rel is None or q is None:
        raise CheckpointError(f"{what} is not a T5 encoder: it lacks shared.weight / encoder.block.0 "
                              "attention weights. Give a T5 (or T5 v1.1) checkpoint")
    heads = rel.shape[1]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in sd
    wi = sd["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"]
    layers = len({k.split(".")[2] for k in sd if k.startswith("encoder.block.")})
    return T5Config(vocab_size=emb.shape[0], d_model=emb.shape[1], d_kv=q.shape[0] // heads,
                    d_ff=wi.shape[0], num_layers=layers, num_heads=heads,
                    relative_attention_num_buckets=rel.shape[0],
                    feed_forward_proj="gated-gelu" if gated else "relu",
                    tie_word_embeddings=not gated)


def _encoder_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full or encoder-only T5 state dict -> exactly the T5EncoderModel keys (tied embedding filled)."""
    sd = {k: v for k, v in sd.items() if not k.startswith(_DROPPED_PREFIXES)}
    if "shared.weight" not in sd and "encoder.embed_tokens.weight" in sd:
        sd["shared.weight"] = sd["encoder.embed_tokens.weight"]
    if "encoder.embed_tokens.weight" not in sd and "shared.weight" in sd:
        sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
    return sd


def _read_folder_weights(folder: Path) -> dict[str, torch.Tensor]:
    for name in _WEIGHT_NAMES:
        if (folder / name).is_file():
            return read_state_dict(folder / name)
    for name in _INDEX_NAMES:
        if (folder / name).is_file():
            index = read_json(folder / name, what="shard index")
            weight_map = index.get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"{folder / name}: no \"weight_map\" naming the weight shards; restore "
                                      "the file from the model's Hugging Face folder")
            shards = sorted(set(weight_map.values()), key=str)
            paths = [file_in_folder(folder, shard, where=str(folder / name), what="weight shard")
                     for shard in shards]  # every entry checked before any is read
            sd = {}
            for path in paths:
                sd.update(read_state_dict(path))
            return sd
    present = sorted(p.name for p in folder.iterdir())
    raise MissingFileError(f"T5 folder {folder} has no weights: expected one of "
                           f"{', '.join(_WEIGHT_NAMES + _INDEX_NAMES)}; it holds {present or 'nothing'}")


def has_tokenizer_files(folder: Path) -> bool:
    """Whether `folder` holds T5 tokenizer files (tokenizer.json or spiece.model)."""
    return any((Path(folder) / n).is_file() for n in _TOKENIZER_FILES[:2])


def t5_vocab_size(path: Path) -> int | None:
    """A T5 weight file -> its embedding's vocabulary size (safetensors: from the header), or None."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in ("shared.weight", "encoder.embed_tokens.weight"):
                    if key in f.keys():
                        return int(f.get_slice(key).get_shape()[0])
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({e})") from e
        return None
    sd = read_state_dict(path)
    emb = sd.get("shared.weight", sd.get("encoder.embed_tokens.weight"))
    return None if emb is None else int(emb.shape[0])


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer
    if not folder.is_dir():
        raise MissingFileError(f"T5 tokenizer folder {folder} does not exist; give the folder holding "
                               f"tokenizer.json (or spiece.model) and tokenizer_config.json")
    if not any((folder / n).is_file() for n in _TOKENIZER_FILES):
        raise MissingFileError(f"{folder} holds no tokenizer files (expected {', '.join(_TOKENIZER_FILES)}); "
                               "copy them from the model's Hugging Face folder")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, ImportError) as e:
        raise UserError(f"could not load the tokenizer in {folder} ({e}). A folder with only "
                        "spiece.model needs the `sentencepiece` package; tokenizer.json needs only "
                        "`tokenizers`") from e


class T5TextEncoder(nn.Module):
    """Prompts -> T5 encoder hidden states and a padding mask."""

    def __init__(self, model: nn.Module, tokenizer, *, max_length: int = 77) -> None:
        super().__init__()
        if max_length <= 1:
            raise ValueError(f"max_length must be at least 2 (one token plus EOS), got {max_length}")
        self.model, self.tokenizer, self.max_length = model.eval(), tokenizer, max_length

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], tokenizer, *, config=None, max_length: int = 77,
                        device=None, dtype=None, what: str = "T5 checkpoint") -> T5TextEncoder:
        """State dict (+ optional T5Config, else inferred) and a tokenizer -> encoder, loaded strictly."""
        from transformers import T5EncoderModel
        sd = _encoder_keys(sd)
        config = config or detect_t5_config(sd, what=what)
        with torch.device("meta"):
            model = T5EncoderModel(config)
        if dtype is not None:
            model = model.to(dtype=dtype)
        load_strict(model, sd, what=what)
        model.encoder.embed_tokens = model.shared  # re-tie after assign-loading
        return cls(model.to(device=device or "cpu"), tokenizer, max_length=max_length)

    @classmethod
    def from_pretrained(cls, folder_or_file: str | Path, tokenizer: str | Path | None = None, *,
                        max_length: int = 77, device=None, dtype=None) -> T5TextEncoder:
        """Local HF folder, or one weight file + tokenizer folder -> encoder. Never downloads."""
        path = Path(folder_or_file)
        if not path.exists():
            raise MissingFileError(f"T5 weights not found at {path}; give a folder with config.json, "
                                    "model.safetensors and tokenizer files, or a .safetensors file and "
                                    "tokenizer=<folder>")
        config = None
        if path.is_dir():
            sd = _read_folder_weights(path)
            if (path / "config.json").is_file():
                from transformers import T5Config
                config = T5Config.from_json_file(str(path / "config.json"))
            tok_folder = Path(tokenizer) if tokenizer is not None else path
        else:
            if tokenizer is None:
                raise UserError(f"{path.name} is a single weight file; pass tokenizer=<folder with "
                                "tokenizer.json / spiece.model> (e.g. the model's Hugging Face folder)")
            from .load import require_kind
            sd = read_state_dict(path)
            require_kind(sd, "t5", path)
            tok_folder = Path(tokenizer)
        return cls.from_state_dict(sd, _load_tokenizer(tok_folder), config=config, max_length=max_length,
                                   device=device, dtype=dtype, what=str(path))

    @classmethod
    def tiny(cls, seed: int = 0, *, max_length: int = 77, device=None, dtype=None) -> T5TextEncoder:
        """kf-tiny's text encoder: T5 at d_model 128, 2 layers, byte tokenizer, seeded random weights."""
        from transformers import ByT5Tokenizer, T5Config, T5EncoderModel
        model = seeded_init_(T5EncoderModel(T5Config(**TINY_T5)), seed)
        model.to(device=device or "cpu", dtype=dtype)
        return cls(model, ByT5Tokenizer(), max_length=max_length)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write config.json, model.safetensors and the tokenizer files into `folder`."""
        folder = Path(folder)
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        return folder

    @property
    def max_tokens(self) -> int:
        """Tokens a prompt may have (EOS included); longer prompts are cut."""
        return self.max_length

    def count_tokens(self, prompt: str) -> int:
        """A prompt -> how many tokens it has (EOS included), before any cut."""
        return len(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> (feats [B, Lt, D] float32, mask [B, Lt] bool, True = real token incl. EOS).

        Every prompt is padded (or truncated, keeping EOS) to `max_length` tokens so batches from
        different calls line up; feature rows at padded positions are set to zero.
        """
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("T5TextEncoder.encode takes a list of strings")
        device = next(self.model.parameters()).device
        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        ids = tok["input_ids"].to(device)                                          # B Lt
        mask = tok["attention_mask"].to(device).bool()                             # B Lt
        feats = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # B Lt D
        feats = feats.float() * mask[..., None]                                    # B Lt D
        return feats, mask

    forward = encode
