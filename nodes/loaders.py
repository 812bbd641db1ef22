"""Loader nodes: pick a file (or the bundled kf-tiny), get a model handle and its licence.
Loaders never touch the GPU.

Each list shows "kf-tiny (bundled)" first, then files from models/kling_foley/ and the matching
built-in folder. What a file holds is detected from its tensors by kf_core's loaders, which
raise a clear error for a wrong kind of file (a VAE given to the DiT loader, ...). Nothing is
cached here: ComfyUI caches each loader's output, and that output alone owns the weights.
"""
from __future__ import annotations

import logging

from . import _comfy
from ._comfy import io
from ._types import CATEGORY, Codec, Model, TextEncoder, VisualEncoders

log = logging.getLogger(__name__)

B = _comfy.BUNDLED
CENTRED = "centred (no file)"
GRIFFIN_LIM = "griffin-lim (no file)"  # before 0.2 a second name of kf-tiny's vocoder; still accepted
PRECISIONS = ["auto", "fp32", "fp16", "bf16"]

LICENCE_PACK = "Apache-2.0 (kf-tiny, this pack's own weights: any use, keep the licence notice)"
LICENCE_MMAUDIO = "CC-BY-NC 4.0 (MMAudio's released weights: non-commercial use only, credit the authors)"
LICENCE_TIP = ("The licence the loaded weights carry: kf-tiny is Apache-2.0 like this pack; MMAudio's "
               "networks and VAEs are CC-BY-NC 4.0 (non-commercial). Other files do not record one: "
               "their terms are those of wherever you got them.")


def bundled():
    """The bundled kf-tiny Components, loaded on the CPU (raises if its weights are missing).
    Each loader takes its part; the rest is freed at once (a reload costs ~0.1 s)."""
    from kf_core.components import load_components  # kf_core loads lazily: ComfyUI starts faster
    return load_components(None)


def _unknown(name: str) -> str:
    return f"not recorded in {name}: its terms are those of wherever you got the file"


def _tip(what: str, folders: str) -> str:
    return (f"{what}: '{B}' uses the model that ships with this pack (Apache-2.0); other entries are files "
            f"in models/kling_foley/{folders} (kind detected from the file). Press R after adding files.")


def _loaded(value, parts: tuple[str, ...], licence: str) -> io.NodeOutput:
    log.info("Kling-Foley loaded %s (licence: %s)", type(value).__name__, licence)
    return io.NodeOutput(_comfy.Loaded(value, parts, licence), licence)


def _licence_output() -> object:
    return io.String.Output(display_name="licence", tooltip=LICENCE_TIP)


class KlingFoleyModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyModelLoader", display_name="Kling-Foley Model Loader", category=CATEGORY,
            description="Loads the Kling-Foley flow network (DiT) — or an MMAudio network file — onto the CPU. "
                        "It moves to the GPU only while sampling, through ComfyUI's memory manager.",
            inputs=[io.Combo.Input("model_name", options=_comfy.model_choices("diffusion_models"),
                                   tooltip=_tip("Flow network", " and models/diffusion_models/")),
                    io.Combo.Input("precision", options=PRECISIONS, default="auto",
                                   tooltip="Weight precision. auto: bf16/fp16 on a capable GPU; on a CPU with "
                                           "native bf16 (AVX-512 BF16 / AMX), bf16 for networks of 50 M+ "
                                           "parameters such as MMAudio (about 3x faster sampling); fp32 "
                                           "otherwise and on Mac. The bundled kf-tiny stays fp32.")],
            outputs=[Model.Output(display_name="model", tooltip="The flow network, for the Flow Sampler."),
                     _licence_output()])

    @classmethod
    def execute(cls, model_name, precision):
        if model_name == B:  # small enough that fp32 costs nothing
            return _loaded(bundled().dit, ("model",), LICENCE_PACK)
        from kf_core.components import dit_from_file
        path = _comfy.model_path(model_name, "diffusion_models")
        dit = dit_from_file(path, device=_comfy.offload_device(), dtype=_comfy.weight_dtype(precision))
        if precision == "auto" and _comfy.torch_device().type == "cpu":  # the network's size decides
            dtype = _comfy.weight_dtype("auto", params=sum(p.numel() for p in dit.model.parameters()))
            if dtype != next(dit.model.parameters()).dtype:
                dit.model.to(dtype=dtype)
        return _loaded(dit, ("model",), LICENCE_MMAUDIO if dit.info.layout == "mmaudio" else _unknown(path.name))


class KlingFoleyT5Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyT5Loader", display_name="Kling-Foley Text Encoder Loader (T5)", category=CATEGORY,
            description="Loads the text encoder: T5 for Kling-Foley models (a folder or .safetensors; single "
                        "files use ComfyUI's T5 tokenizer), or the CLIP file for MMAudio networks.",
            inputs=[io.Combo.Input("text_encoder_name", options=_comfy.model_choices("text_encoders"),
                                   tooltip=_tip("Text encoder", " and models/text_encoders/"))],
            outputs=[TextEncoder.Output(display_name="text_encoder", tooltip="For Kling-Foley Text Encode."),
                     _licence_output()])

    @classmethod
    def execute(cls, text_encoder_name):
        if text_encoder_name == B:
            return _loaded(bundled().text_encoder, ("encoder",), LICENCE_PACK)
        from kf_core.components import text_encoder_from_file
        path = _comfy.model_path(text_encoder_name, "text_encoders")
        tokenizer = None if path.is_dir() else (_comfy.t5_tokenizer_dir() or path.parent)
        return _loaded(text_encoder_from_file(path, tokenizer=tokenizer), ("encoder",), _unknown(path.name))


class KlingFoleyVisualEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyVisualEncoderLoader",
            display_name="Kling-Foley Visual Encoder Loader (MetaCLIP + Synchformer)", category=CATEGORY,
            description="Loads the visual encoders: MetaCLIP (what is on screen, 8 fps) and Synchformer (when "
                        "things happen, 25 fps).",
            inputs=[io.Combo.Input("clip_name", options=_comfy.model_choices("clip_vision"),
                                   tooltip=_tip("MetaCLIP / open_clip image model", " and models/clip_vision/")),
                    io.Combo.Input("synchformer_name", options=_comfy.model_choices(),
                                   tooltip=_tip("Synchformer sync encoder", ""))],
            outputs=[VisualEncoders.Output(display_name="visual_encoders",
                                           tooltip="For Kling-Foley MetaCLIP/Synchformer Encode."),
                     _licence_output()])

    @classmethod
    def execute(cls, clip_name, synchformer_name):
        if B in (clip_name, synchformer_name):
            if clip_name != synchformer_name:
                raise ValueError("use the bundled kf-tiny for both visual encoders or for neither: its "
                                 "MetaCLIP and Synchformer only fit each other and the kf-tiny model")
            return _loaded(bundled().visual_encoders, ("clip", "sync"), LICENCE_PACK)
        from kf_core.components import visual_encoders_from_files
        clip, sync = _comfy.model_path(clip_name, "clip_vision"), _comfy.model_path(synchformer_name)
        return _loaded(visual_encoders_from_files(clip, sync), ("clip", "sync"),
                       f"MetaCLIP {_unknown(clip.name)}; Synchformer {_unknown(sync.name)}")


class KlingFoleyCodecLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="KlingFoleyCodecLoader",
            display_name="Kling-Foley Codec Loader (Mel-VAE + Mono2Stereo + Vocoder)", category=CATEGORY,
            description="Loads the audio codec: Mel-VAE (latents → mel), Mono2Stereo (mono mel → stereo) and "
                        "vocoder (mel → waveform). With the bundled Mel-VAE the whole kf-tiny codec is used.",
            inputs=[io.Combo.Input("vae_name", options=_comfy.model_choices("vae"),
                                   tooltip=_tip("Mel-VAE", " and models/vae/")),
                    io.Combo.Input("mono2stereo_name", options=_comfy.model_choices(first=(B, CENTRED)),
                                   tooltip="Mono2Stereo pan model; 'centred' gives L = R. Ignored when the VAE "
                                           "is the bundled one (which has its own)."),
                    io.Combo.Input("vocoder_name", options=_comfy.model_choices("vae"),
                                   tooltip=f"Vocoder (BigVGAN-style) file. '{B}' is kf-tiny's own vocoder, "
                                           "Griffin-Lim: it needs no file but sounds rougher. Ignored when the "
                                           "VAE is the bundled one.")],
            outputs=[Codec.Output(display_name="codec", tooltip="For Mel-VAE Decode, Mono2Stereo and Vocoder."),
                     _licence_output()])

    @classmethod
    def validate_inputs(cls, vocoder_name):
        """Saved workflows may hold the old name of kf-tiny's vocoder; anything else must be listed."""
        if vocoder_name == GRIFFIN_LIM or vocoder_name in _comfy.model_choices("vae"):
            return True
        return f"vocoder_name {vocoder_name!r} is not a vocoder file here: pick '{B}' or a file from the list"

    @classmethod
    def execute(cls, vae_name, mono2stereo_name, vocoder_name):
        parts = ("vae", "mono2stereo", "vocoder")
        if vae_name == B:
            return _loaded(bundled().codec, parts, LICENCE_PACK)
        from kf_core.codec import MMAudioVAE
        from kf_core.components import codec_from_roles
        files = {"vae": _comfy.model_path(vae_name, "vae"),
                 "mono2stereo": mono2stereo_name not in (B, CENTRED) and _comfy.model_path(mono2stereo_name),
                 "vocoder": vocoder_name not in (B, GRIFFIN_LIM) and _comfy.model_path(vocoder_name, "vae")}
        # identity latent statistics: a network's own travel with the latents it samples
        codec = codec_from_roles({r: p for r, p in files.items() if p})
        mmaudio = isinstance(codec.vae, MMAudioVAE)
        return _loaded(codec, parts, LICENCE_MMAUDIO if mmaudio else _unknown(files["vae"].name))


NODES = [KlingFoleyModelLoader, KlingFoleyT5Loader, KlingFoleyVisualEncoderLoader, KlingFoleyCodecLoader]
