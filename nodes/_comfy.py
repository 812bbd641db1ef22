"""Everything ComfyUI-specific, behind one door: node API, folders, devices, memory, progress, cancel, VIDEO.

This is the only file of the pack that imports `comfy`, `folder_paths` or `comfy_api`. Each of
those imports is optional: outside ComfyUI (tests, scripts) the same functions fall back to plain
behaviour — CPU device, a no-op progress bar whose cancel hook still works, ./models, ./input and
./output folders (or the ones `configure_plain` sets), a small VIDEO stand-in, and the pack's own
plain-Python V3 schema (`_schema.py`) in place of `comfy_api.latest.io`.
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

from . import _schema

log = logging.getLogger(__name__)

try:  # ComfyUI's own modules exist only inside a ComfyUI process
    import folder_paths  # type: ignore
    import comfy.model_management as mm  # type: ignore
    import comfy.utils as comfy_utils  # type: ignore
    from comfy.model_patcher import ModelPatcher  # type: ignore
    HAVE_COMFY = True
except ImportError:
    folder_paths = mm = comfy_utils = ModelPatcher = None
    HAVE_COMFY = False

try:
    from comfy_api.latest import InputImpl, Types  # type: ignore
except ImportError:
    InputImpl = Types = None

try:  # the V3 node API: ComfyUI 0.3.48 (August 2025) and later
    from comfy_api.latest import ComfyExtension, io as _latest_io  # type: ignore
except (ImportError, AttributeError):
    ComfyExtension = _latest_io = None


def v3_gap(api) -> str | None:
    """What `api` (a comfy_api.latest.io) lacks of what the pack's nodes use; None when nothing.

    Builds one schema with every type and keyword the nodes pass, so a release that renamed or
    dropped any of them is caught here, at import, and the pack falls back to the classic API."""
    if api is None:
        return "comfy_api.latest is not installed"
    try:
        custom = api.Custom("KLINGFOLEY_PROBE")
        api.Schema(node_id="KlingFoleyProbe", display_name="probe", category="audio/Kling-Foley",
                   description="probe", is_output_node=True, inputs=[
                       api.Int.Input("i", default=0, min=0, max=1, step=1, control_after_generate=True, tooltip="t"),
                       api.Float.Input("f", default=0.0, min=0.0, max=1.0, step=0.1, tooltip="t"),
                       api.String.Input("s", default="", multiline=True, tooltip="t"),
                       api.Boolean.Input("b", default=False, tooltip="t"),
                       api.Combo.Input("c", options=["a"], default="a", upload=api.UploadType.video, tooltip="t"),
                       api.Image.Input("im", optional=True, tooltip="t"),
                       api.Audio.Input("a", tooltip="t"), api.Video.Input("v", optional=True, tooltip="t"),
                       custom.Input("x", tooltip="t")],
                   outputs=[api.Audio.Output(display_name="a", tooltip="t"), api.Image.Output(display_name="i"),
                            api.Video.Output(display_name="v"), api.String.Output(display_name="s"),
                            api.Float.Output(display_name="f"), custom.Output(display_name="x")])
        api.NodeOutput(1, ui={"images": []})
        for name in ("ComfyNode", "Schema"):
            getattr(api, name)
    except (AttributeError, TypeError, ValueError) as e:
        return f"comfy_api.latest.io lacks what the nodes use ({type(e).__name__}: {e})"
    return None


V3_GAP = v3_gap(_latest_io)
V3 = V3_GAP is None and ComfyExtension is not None
io = _latest_io if V3 else _schema  # what every node module builds on
if HAVE_COMFY and not V3:
    log.info("Kling-Foley: %s; registering the nodes through the classic node API", V3_GAP)

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


def weight_dtype(choice: str, device: torch.device | None = None, params: int | None = None) -> torch.dtype:
    """"auto" | "fp32" | "fp16" | "bf16" -> a dtype. "auto": bf16/fp16 on GPUs that do it well; on a CPU,
    what the command line picks for a network of `params` parameters (`kf_core.precision`: bf16 for
    50 M+ on a CPU with native bf16, e.g. MMAudio; float32 otherwise, and when `params` is not given)."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if choice in table:
        return table[choice]
    if choice != "auto":
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {choice!r}")
    device = torch_device() if device is None else device
    if device.type != "cuda":
        if device.type != "cpu" or params is None:
            return torch.float32
        from kf_core.precision import pick_dtype
        return pick_dtype("auto", device, params)
    if HAVE_COMFY and mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float16 if (not HAVE_COMFY or mm.should_use_fp16(device)) else torch.float32


class Loaded:
    """What a loader node outputs: a kf_core model object and ComfyUI's handles on its modules.

    `value` is the kf_core object (DiT, TextEncoder, VisualEncoders or AudioCodec); `parts` names
    its modules (attributes of `value`) that run on the compute device; `licence` says what the
    weights may be used for. Inside ComfyUI each part gets a ModelPatcher, made here on the offload
    device (nothing touches the GPU) and owned by this object alone: ComfyUI's cache of the loader's
    output is the only thing that keeps the weights alive, so when it drops the output (another file
    picked, cache cleared) modules and patchers go together, and ComfyUI can evict them meanwhile.
    """

    def __init__(self, value, parts: tuple[str, ...], licence: str) -> None:
        self.value, self.parts, self.licence = value, tuple(parts), licence
        self.patchers = {}
        if HAVE_COMFY:
            for name in self.parts:
                module = getattr(value, name)
                if module is None or next(module.parameters(), None) is None:
                    continue  # nothing to move (e.g. Griffin-Lim, no Mono2Stereo)
                size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
                self.patchers[name] = ModelPatcher(module, load_device=torch_device(),
                                                   offload_device=offload_device(), size=size)

    def __repr__(self) -> str:
        return f"Loaded({type(self.value).__name__}, parts={self.parts}, licence={self.licence!r})"


@contextlib.contextmanager
def on_device(handle: Loaded, *parts: str):
    """Run a block with `handle`'s modules (all, or the named `parts`) on the compute device; yields
    the kf_core object. Inside ComfyUI they are loaded through its memory manager, which first makes
    room (e.g. by offloading a video model) and later evicts them when something else needs it."""
    unknown = set(parts) - set(handle.parts)
    if unknown:
        raise KeyError(f"{handle!r} has no part(s) {sorted(unknown)}")
    patchers = [p for name, p in handle.patchers.items() if not parts or name in parts]
    if patchers:
        # plain torch modules cannot run half on the GPU (ComfyUI's low-VRAM mode needs comfy.ops layers)
        mm.load_models_gpu(patchers, force_full_load=True)
    yield handle.value


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


# ---------------------------------------------------------------- registration
def extension(node_list: list):
    """The ComfyExtension whose node list is `node_list` (ComfyUI with the V3 API only)."""
    if not V3:
        raise RuntimeError(f"ComfyUI's V3 node API is not usable here ({V3_GAP}); register NODE_CLASS_MAPPINGS")

    class KlingFoleyExtension(ComfyExtension):
        async def get_node_list(self):
            return list(node_list)
    return KlingFoleyExtension()
