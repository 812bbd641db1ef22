"""Reading weight files and loading them strictly.

`read_state_dict(path)` accepts `.safetensors` (preferred) and pickle checkpoints (`.pth`,
`.pt`, `.ckpt`, `.bin`) through `torch.load(weights_only=True)` only. `load_strict` copies a
state dict into a module and raises `CheckpointError` listing every missing, unexpected and
mis-shaped key (and every tensor holding NaN/inf) instead of printing and carrying on.
`file_in_folder` keeps a model folder's references (manifest entries, shard indexes) inside it;
`read_json` reads such a file with an error that names it.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch import nn

from ..errors import MissingFileError, UserError

__all__ = ["CheckpointError", "read_state_dict", "save_state_dict", "load_strict", "WEIGHT_SUFFIXES",
           "file_in_folder", "read_json"]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
_MAX_LISTED = 12
_FINITE_CHUNK = 1 << 24  # elements checked at a time, so the check needs no second copy of a big tensor


class CheckpointError(UserError):
    """A weight file that cannot be used for the model it was given to."""


def file_in_folder(folder: str | Path, name, *, where: str, what: str) -> Path:
    """A file name read from a model folder's own files (a manifest entry, a shard index) -> folder/name;
    CheckpointError naming the entry when it is not a plain relative path inside the folder (absolute,
    or with a `..` step): a model folder reads only files inside itself."""
    if not isinstance(name, str) or not name.strip():
        raise CheckpointError(f"{where}: the {what} entry {name!r} is not a file name; give one such as "
                              "\"dit.safetensors\"")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive \
            or ".." in parts:
        raise CheckpointError(f"{where}: the {what} entry {name!r} points outside the model folder {folder}; "
                              "a model folder may only name files inside itself — move the file into the "
                              "folder and give its name")
    return Path(folder) / name


def read_json(path: str | Path, *, what: str = "file") -> dict:
    """A JSON object file -> dict; CheckpointError naming the file for bad JSON or a non-object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise MissingFileError(f"{path} not found") from e
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: this {what} is not text (UTF-8); restore it or delete it") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: this {what} is not valid JSON ({e.msg} at line {e.lineno}, column "
                              f"{e.colno}); fix it or restore it") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: this {what} must hold a JSON object {{...}}, found {type(data).__name__}")
    return data


def _pickle_problem(path: Path, err: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in words for a person (never torch's advice)."""
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        return ("it is neither a PyTorch zip archive nor a pickle — the file is damaged, truncated or of another "
                "kind; download or export it again")
    text = str(err)
    if "global" in text.lower() or "unsupported" in text.lower():
        return ("it holds Python objects besides tensors (a whole pickled model, or code); for safety only plain "
                "tensor checkpoints are read — convert it to .safetensors where it was made")
    return "its archive or pickle is damaged or truncated; download or export it again"


def _check_finite(sd: Mapping[str, torch.Tensor], keys, what: str) -> None:
    bad = []
    for k in keys:
        t = sd[k]
        if not t.is_floating_point() or t.is_meta:
            continue
        flat = t.reshape(-1)
        if any(not torch.isfinite(part).all() for part in flat.split(_FINITE_CHUNK)):
            bad.append(k)
    if bad:
        raise CheckpointError(f"{what} holds NaN or infinite values in {len(bad)} tensor(s): {_listing(bad)}. "
                              "The file is damaged or was saved from a training run that diverged; download or "
                              "export it again")


def _listing(keys, limit: int = _MAX_LISTED) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def read_state_dict(path: str | Path, *, unwrap: tuple[str, ...] = ("state_dict", "generator", "model"),
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a weight file into a flat {name: tensor} dict on `device` (default CPU).

    Pickle files are opened with `weights_only=True`; a wrapper dict such as
    `{"generator": {...}}` is unwrapped through the keys in `unwrap`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weight file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name} is empty (0 bytes); download or export it again")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            sd = load_file(str(path), device=str(device))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path.name} is not a readable safetensors file ({e}); "
                                  "it may be truncated — download it again") from e
    elif suffix in WEIGHT_SUFFIXES:
        try:
            sd = torch.load(str(path), map_location=device, weights_only=True)
        except Exception as e:  # torch raises many types for bad pickles
            raise CheckpointError(f"{path.name} could not be read as a weights-only PyTorch checkpoint: "
                                  f"{_pickle_problem(path, e)}") from e
    else:
        raise CheckpointError(f"{path.name}: unsupported weight file type {suffix!r}; "
                              f"expected one of {', '.join(WEIGHT_SUFFIXES)}")
    for key in unwrap:
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{path.name} does not hold a state dict (found {type(sd).__name__})")
    out = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not out:
        raise CheckpointError(f"{path.name} holds no tensors")
    return out


def save_state_dict(sd: Mapping[str, torch.Tensor], path: str | Path,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write tensors as safetensors atomically (temp file + rename)."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # tied weights (e.g. T5's shared embedding) share storage, which safetensors refuses: copy them
    seen: set[int] = set()
    tensors = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        ptr = v.untyped_storage().data_ptr()
        tensors[k] = v.clone().contiguous() if ptr in seen else v.contiguous()
        seen.add(ptr)
    try:
        save_file(tensors, str(tmp), metadata=dict(metadata or {}))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], *, what: str = "checkpoint",
                assign: bool | None = None) -> nn.Module:
    """Load `sd` into `module`, raising CheckpointError naming every bad key.

    Modules built on the `meta` device are materialised with `assign=True` (the checkpoint's
    tensors become the parameters, cast to the module's dtype where it is floating point).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    misshaped = [f"{k} {tuple(sd[k].shape)} vs expected {tuple(v.shape)}"
                 for k, v in own.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or misshaped:
        parts = []
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped: {_listing(misshaped)}")
        if missing:
            parts.append(f"{len(missing)} missing: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_listing(unexpected)}")
        raise CheckpointError(f"{what} does not fit {type(module).__name__}: " + "; ".join(parts))
    _check_finite(sd, own, what)
    if assign is None:
        assign = any(t.is_meta for t in own.values())
    if assign:
        cast = {}
        for k, v in own.items():
            t = sd[k]
            if v.is_floating_point() and t.is_floating_point():
                t = t.to(v.dtype)
            cast[k] = t
        module.load_state_dict(cast, strict=True, assign=True)
    else:
        module.load_state_dict(dict(sd), strict=True)
    return module
