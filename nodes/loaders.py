"""Loader nodes: pick a file (or the bundled kf-tiny), get a model object. Loaders never touch the GPU.

Each list shows "kf-tiny (bundled)" first, then files from models/kling_foley/ and the matching
built-in folder. What a file holds is detected from its tensors by kf_core's loaders, which
raise a clear error for a wrong kind of file (a VAE given to the DiT loader, ...).
"""
from __future__ import annotations

import functools

from . import _comfy

CATEGORY = "audio/Kling-Foley"
GRIFFIN_LIM = "griffin-lim (no file)"
CENTRED = "centred (no file)"


@functools.lru_cache(maxsize=1)
def bundled():
    """The bundled kf-tiny Components, loaded once on the CPU (raises if its weights are missing)."""
    from kf_core.components import load_components
    return load_components(None)


def _tip(what: str, folders: str) -> str:
    return (f"{what}: '{_comfy.BUNDLED}' uses the model that ships with this pack; other entries are files "
            f"in models/kling_foley/{folders} (kind detected from the file). Press R after adding files.")


class KlingFoleyModelLoader:
    DESCRIPTION = ("Loads the Kling-Foley flow network (DiT) — or an MMAudio network file — onto the CPU. "
                   "It moves to the GPU only while sampling, through ComfyUI's memory manager.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("KLINGFOLEY_MODEL",)
    RETURN_NAMES = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (_comfy.model_choices("diffusion_models"),
                           {"tooltip": _tip("Flow network", " and models/diffusion_models/")}),
            "precision": (["auto", "fp32", "fp16", "bf16"],
                          {"default": "auto", "tooltip": "Weight precision. auto: bf16/fp16 on a capable GPU, "
                                                         "fp32 on CPU/Mac. The bundled kf-tiny stays fp32."}),
        }}

    def load(self, model_name, precision):
        if model_name == _comfy.BUNDLED:  # small enough that fp32 costs nothing
            return (bundled().dit,)
        path = _comfy.model_path(model_name, "diffusion_models")
        from kf_core.components import dit_from_file
        return (dit_from_file(path, device=_comfy.offload_device(), dtype=_comfy.weight_dtype(precision)),)


class KlingFoleyT5Loader:
    DESCRIPTION = ("Loads the text encoder: T5 for Kling-Foley models (a folder or .safetensors; single files "
                   "use ComfyUI's T5 tokenizer), or the CLIP file for MMAudio networks.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("KLINGFOLEY_TEXT_ENCODER",)
    RETURN_NAMES = ("text_encoder",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text_encoder_name": (_comfy.model_choices("text_encoders"),
                                  {"tooltip": _tip("Text encoder", " and models/text_encoders/")}),
        }}

    def load(self, text_encoder_name):
        if text_encoder_name == _comfy.BUNDLED:
            return (bundled().text_encoder,)
        from kf_core.components import text_encoder_from_file
        path = _comfy.model_path(text_encoder_name, "text_encoders")
        tokenizer = None if path.is_dir() else (_comfy.t5_tokenizer_dir() or path.parent)
        return (text_encoder_from_file(path, tokenizer=tokenizer),)


class KlingFoleyVisualEncoderLoader:
    DESCRIPTION = ("Loads the visual encoders: MetaCLIP (what is on screen, 8 fps) and Synchformer (when "
                   "things happen, 25 fps).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("KLINGFOLEY_VISUAL_ENCODERS",)
    RETURN_NAMES = ("visual_encoders",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_name": (_comfy.model_choices("clip_vision"),
                          {"tooltip": _tip("MetaCLIP / open_clip image model", " and models/clip_vision/")}),
            "synchformer_name": (_comfy.model_choices(),
                                 {"tooltip": _tip("Synchformer sync encoder", "")}),
        }}

    def load(self, clip_name, synchformer_name):
        if _comfy.BUNDLED in (clip_name, synchformer_name):
            if clip_name != synchformer_name:
                raise ValueError("use the bundled kf-tiny for both visual encoders or for neither: its "
                                 "MetaCLIP and Synchformer only fit each other and the kf-tiny model")
            return (bundled().visual_encoders,)
        from kf_core.components import visual_encoders_from_files
        return (visual_encoders_from_files(_comfy.model_path(clip_name, "clip_vision"),
                                           _comfy.model_path(synchformer_name)),)


class KlingFoleyCodecLoader:
    DESCRIPTION = ("Loads the audio codec: Mel-VAE (latents → mel), Mono2Stereo (mono mel → stereo) and "
                   "vocoder (mel → waveform). Without a vocoder file, Griffin-Lim is used.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("KLINGFOLEY_CODEC",)
    RETURN_NAMES = ("codec",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae_name": (_comfy.model_choices("vae"), {"tooltip": _tip("Mel-VAE", " and models/vae/")}),
            "mono2stereo_name": (_comfy.model_choices(first=(_comfy.BUNDLED, CENTRED)),
                                 {"tooltip": "Mono2Stereo pan model; 'centred' gives L = R. Ignored when "
                                             "the VAE is the bundled one (which has its own)."}),
            "vocoder_name": (_comfy.model_choices("vae", first=(_comfy.BUNDLED, GRIFFIN_LIM)),
                             {"tooltip": "Vocoder (BigVGAN-style) file; griffin-lim needs none but sounds "
                                         "rougher. Ignored when the VAE is the bundled one."}),
        }}

    def load(self, vae_name, mono2stereo_name, vocoder_name):
        if vae_name == _comfy.BUNDLED:
            return (bundled().codec,)
        pick = {_comfy.BUNDLED: None, CENTRED: None, GRIFFIN_LIM: None}
        m2s = pick.get(mono2stereo_name, mono2stereo_name) and _comfy.model_path(mono2stereo_name)
        voc = pick.get(vocoder_name, vocoder_name) and _comfy.model_path(vocoder_name, "vae")
        from kf_core.components import codec_from_roles
        roles = {"vae": _comfy.model_path(vae_name, "vae"), "mono2stereo": m2s, "vocoder": voc}
        # identity latent statistics: a network's own travel with the latents it samples
        return (codec_from_roles({r: p for r, p in roles.items() if p}),)


NODES = {"KlingFoleyModelLoader": ("Kling-Foley Model Loader", KlingFoleyModelLoader),
         "KlingFoleyT5Loader": ("Kling-Foley Text Encoder Loader (T5)", KlingFoleyT5Loader),
         "KlingFoleyVisualEncoderLoader": ("Kling-Foley Visual Encoder Loader (MetaCLIP + Synchformer)",
                                           KlingFoleyVisualEncoderLoader),
         "KlingFoleyCodecLoader": ("Kling-Foley Codec Loader (Mel-VAE + Mono2Stereo + Vocoder)",
                                   KlingFoleyCodecLoader)}
