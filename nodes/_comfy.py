"""Everything ComfyUI-specific, behind one door: folders, devices, memory, progress, cancel, VIDEO.

This is the only file of the pack that imports `comfy`, `folder_paths` or `comfy_api`. Each of
those imports is optional: outside ComfyUI (tests, scripts) the same functions fall back to plain
behaviour — CPU device, a no-op progress bar whose cancel hook still works, ./models, ./input and
./output folders (or the ones `configure_plain` sets), and a small VIDEO stand-in.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

log = logging.getLogger(__name__)

try:  # ComfyUI's own modules exist only inside a ComfyUI process
    import folder_paths  # type: ignore
    import comfy.model_management as mm  # type: ignore
    import comfy.utils as comfy_utils  # type: ignore
    HAVE_COMFY = True
except ImportError:
    folder_paths = mm = comfy_utils = None
    HAVE_COMFY = False

try:
    from comfy_api.latest import InputImpl, Types  # type: ignore
except ImportError:
    InputImpl = Types = None

BUNDLED = "kf-tiny (bundled)"
NONE = "none"
MODEL_FOLDER = "kling_foley"
WEIGHT_EXTENSIONS = {".safetensors", ".sft", ".pt", ".pth", ".ckpt", ".bin"}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}

# plain (no ComfyUI) folders; tests point them at tmp dirs with configure_plain()
_plain = {"models": Path("models"), "input": Path("input"), "output": Path("output")}


def configure_plain(*, models=None, input=None, output=None) -> None:
    """Set the folders used when ComfyUI is absent (models/, input/, output/ by default)."""
    for key, value in (("models", models), ("input", input), ("output", output)):
        if value is not None:
            _plain[key] = Path(value)


# ---------------------------------------------------------------- model folders
def register_model_folders() -> Path:
    """Register models/kling_foley/ (weight files only) with ComfyUI, creating it; -> its path."""
    if not HAVE_COMFY:
        return _plain["models"] / MODEL_FOLDER
    folder = Path(folder_paths.models_dir) / MODEL_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only install still works with the built-in folders
        log.warning("could not create %s (%s)", folder, e)
    paths, _ = folder_paths.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))
    if str(folder) not in paths:
        paths = [str(folder), *paths]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(WEIGHT_EXTENSIONS))
    return folder


def _folder_dirs(name: str) -> list[Path]:
    if HAVE_COMFY:
        try:
            return [Path(p) for p in folder_paths.get_folder_paths(name)]
        except KeyError:
            return []
    return [_plain["models"] / name]


def model_files(*folders: str) -> list[str]:
    """Weight files in models/kling_foley/ and the given built-in folders (relative names, sorted)."""
    names: list[str] = []
    for folder in (MODEL_FOLDER, *folders):
        if HAVE_COMFY and folder in folder_paths.folder_names_and_paths:
            found = folder_paths.get_filename_list(folder)
        else:
            found = [str(p.relative_to(d)).replace(os.sep, "/") for d in _folder_dirs(folder) if d.is_dir()
                     for p in d.rglob("*") if p.is_file()]
        names += [n for n in found if Path(n).suffix.lower() in WEIGHT_EXTENSIONS and n not in names]
    return sorted(names)


def model_choices(*folders: str, first: tuple[str, ...] = (BUNDLED,)) -> list[str]:
    """A loader's list: fixed entries (the bundled kf-tiny first) then every matching file."""
    return [*first, *model_files(*folders)]


def model_path(name: str, *folders: str) -> Path:
    """A name from `model_files` -> its full path; a clear FileNotFoundError when it is gone."""
    for folder in (MODEL_FOLDER, *folders):
        for d in _folder_dirs(folder):
            if (d / name).is_file():
                return d / name
    where = ", ".join(str(d) for f in (MODEL_FOLDER, *folders) for d in _folder_dirs(f))
    raise FileNotFoundError(f"model file {name!r} was not found in {where}. It may have been moved or "
                            f"deleted: put it back, refresh the node list (press R), or pick '{BUNDLED}'")


def t5_tokenizer_dir() -> Path | None:
    """ComfyUI ships T5's sentencepiece tokenizer; single-file T5 weights can use it."""
    if not HAVE_COMFY:
        return None
    folder = Path(comfy_utils.__file__).resolve().parent / "text_encoders" / "t5_tokenizer"
    return folder if folder.is_dir() else None


# ---------------------------------------------------------------- input / output files
def input_dir() -> Path:
    return Path(folder_paths.get_input_directory()) if HAVE_COMFY else _plain["input"]


def output_dir() -> Path:
    return Path(folder_paths.get_output_directory()) if HAVE_COMFY else _plain["output"]


def input_videos() -> list[str]:
    """Video files in the input folder (top level), sorted."""
    folder = input_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def input_path(name: str) -> Path:
    """A file name from the input list (ComfyUI's "name [output]" annotations allowed) -> path."""
    if not name or name == NONE:
        raise FileNotFoundError("no video given: pick or upload a file, or connect IMAGE frames (+ fps) or a "
                                "VIDEO to Kling-Foley Load Video")
    path = Path(folder_paths.get_annotated_filepath(name)) if HAVE_COMFY else input_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"video {name!r} not found ({path}). Upload it with the node's upload "
                                "button or copy it into ComfyUI's input folder, or connect frames instead")
    return path


def input_stamp(name: str) -> str:
    """A change marker for an input file (its size and modification time; "" when absent)."""
    try:
        st = input_path(name).stat()
    except FileNotFoundError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"


def output_path(prefix: str, suffix: str) -> Path:
    """filename_prefix ("kling_foley" or "sub/name") -> a not-yet-existing path in the output folder."""
    from kf_core.validate import output_in_folder
    return output_in_folder(output_dir(), prefix, suffix)


# ---------------------------------------------------------------- devices and memory
def torch_device() -> torch.device:
    """The device ComfyUI computes on (CPU outside ComfyUI)."""
    return mm.get_torch_device() if HAVE_COMFY else torch.device("cpu")


def offload_device() -> torch.device:
    """Where idle weights live: ComfyUI's offload device, CPU outside it. Loaders build here."""
    return mm.unet_offload_device() if HAVE_COMFY else torch.device("cpu")


def weight_dtype(choice: str, device: torch.device | None = None) -> torch.dtype:
    """"auto" | "fp32" | "fp16" | "bf16" -> a dtype ("auto": bf16/fp16 on GPUs that do it well, else fp32)."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if choice in table:
        return table[choice]
    if choice != "auto":
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {choice!r}")
    device = torch_device() if device is None else device
    if device.type != "cuda":
        return torch.float32
    if HAVE_COMFY and mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float16 if (not HAVE_COMFY or mm.should_use_fp16(device)) else torch.float32


_patchers: dict[int, object] = {}


def _patcher(module: torch.nn.Module):
    from comfy.model_patcher import ModelPatcher  # type: ignore
    key = id(module)
    if key not in _patchers:
        size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
        _patchers[key] = ModelPatcher(module, load_device=torch_device(), offload_device=offload_device(),
                                      size=size)
    return _patchers[key]


@contextlib.contextmanager
def on_device(*modules: torch.nn.Module | None):
    """Run a block with `modules` on the compute device, loaded through ComfyUI's memory manager
    (which frees room first, e.g. by offloading a video model); given back afterwards."""
    modules = tuple(m for m in modules if m is not None and next(m.parameters(), None) is not None)
    if not HAVE_COMFY or not modules:
        yield torch_device()
        return
    patchers = [_patcher(m) for m in modules]
    mm.load_models_gpu(patchers)
    try:
        yield torch_device()
    finally:
        for loaded in [lm for lm in mm.current_loaded_models if lm.model in patchers]:
            loaded.model_unload()
            mm.current_loaded_models.remove(loaded)
        mm.soft_empty_cache()


# ---------------------------------------------------------------- progress and cancel
class Cancelled(RuntimeError):
    """A plain-Python cancel (ComfyUI raises its own InterruptProcessingException)."""


_cancel = threading.Event()


def request_cancel() -> None:
    """Outside ComfyUI: make the next cancel check raise (the Cancel button's stand-in)."""
    _cancel.set()


def check_cancel() -> None:
    """Raise if the user cancelled. Called in long loops (decoding, stitching, muxing)."""
    if HAVE_COMFY:
        mm.throw_exception_if_processing_interrupted()
    elif _cancel.is_set():
        _cancel.clear()
        raise Cancelled("cancelled by the user; nothing was written")


def progress(total: int):
    """A sampler callback(step, total, x, t): advances ComfyUI's progress bar and checks cancel."""
    bar = comfy_utils.ProgressBar(total) if HAVE_COMFY else None

    def callback(step, total_, x=None, t=None):
        check_cancel()
        if bar is not None:
            bar.update_absolute(min(step, total_), total_)  # samplers count steps from 1
    return callback


# ---------------------------------------------------------------- VIDEO
@dataclass(frozen=True)
class PlainComponents:
    images: torch.Tensor
    audio: object
    frame_rate: Fraction


class PlainVideo:
    """Outside ComfyUI: a stand-in with the two VIDEO methods this pack uses."""

    def __init__(self, path: Path | None = None, components: PlainComponents | None = None) -> None:
        self.path, self.components = path, components

    def get_stream_source(self):
        return str(self.path) if self.path is not None else None

    def get_components(self) -> PlainComponents:
        if self.components is None:
            from kf_core.io import probe, sample_frames
            info = probe(self.path)
            # square frames suffice for a stand-in; ComfyUI's own VIDEO keeps the aspect ratio
            frames = sample_frames(self.path, info.fps, size=min(info.width, info.height))  # N 3 S S
            self.components = PlainComponents(frames.permute(0, 2, 3, 1).float() / 255, None,
                                              Fraction(info.fps).limit_denominator(1001))
        return self.components


def video_from_file(path: Path):
    """A written file -> the core VIDEO type (or the plain stand-in)."""
    return InputImpl.VideoFromFile(str(path)) if InputImpl is not None else PlainVideo(path=Path(path))


def video_source(video) -> tuple[object, float | None]:
    """Core VIDEO -> (file path, None) when it is a file on disk, else (IMAGE [N,H,W,3], fps)."""
    get_source = getattr(video, "get_stream_source", None)
    source = get_source() if get_source is not None else None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return Path(source), None
    comp = video.get_components()
    return comp.images, float(comp.frame_rate)


def fps_of(fps: float, video_info=None) -> float | None:
    """The frame rate of an IMAGE batch: the fps widget when > 0, else VHS video info's
    loaded_fps (after any force_rate) or source_fps; None when nothing says it."""
    from kf_core.validate import check_fps
    if check_fps(fps) is not None:  # a negative or NaN fps is an error naming it, not "no fps"
        return float(fps)
    if video_info is not None:
        for key in ("loaded_fps", "source_fps"):
            try:
                value = video_info[key]  # VHS passes a lazy Mapping: index, never isinstance
            except (KeyError, TypeError):
                continue
            if value:
                return float(value)
    return None
