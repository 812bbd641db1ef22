"""Model folders read only their own files, and every broken file gets a message naming it."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch
from torch import nn

from kf_core.components import BUNDLED_DIR, load_components
from kf_core.errors import UserError
from kf_core.loading.state import CheckpointError, load_strict, read_state_dict
from kf_core.pipeline import load_pipeline


def _manifest(folder, **components):
    (folder / "manifest.json").write_text(json.dumps({"name": "t", "components": components}))


@pytest.mark.parametrize("entry", ["../outside.safetensors", "sub/../../outside.safetensors", "/abs/dit.safetensors",
                                   "C:\\weights\\dit.safetensors"])
def test_manifest_entry_outside_its_folder_is_refused_by_name(tmp_path, entry):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(BUNDLED_DIR / "dit.safetensors", tmp_path / "outside.safetensors")  # a real file it must not read
    _manifest(folder, dit=entry, vae="vae.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_components(folder)
    msg = str(e.value)
    assert repr(entry) in msg and "dit entry" in msg and "outside the model folder" in msg
    assert str(folder / "manifest.json") in msg


def test_t5_shard_index_pointing_outside_is_refused(tmp_path):
    from kf_core.encoders.t5 import T5TextEncoder
    folder = tmp_path / "t5"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"shared.weight": "../secret.safetensors"}}))
    with pytest.raises(CheckpointError, match=r"weight shard entry '\.\./secret\.safetensors' points outside"):
        T5TextEncoder.from_pretrained(folder)
    (folder / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors\.index\.json: this shard index is not valid JSON"):
        T5TextEncoder.from_pretrained(folder)


@pytest.mark.parametrize("text,message", [
    ("{oops", "this model manifest is not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"components": ["dit.safetensors"]}', '"components" must be an object'),
    ('{"components": {"dit": 7}}', "the dit entry 7 is not a file name"),
    ('{"components": {"weights": "x.safetensors"}}', "unknown component 'weights'"),
    ('{"codec": 44}', '"codec" must be text'),
])
def test_bad_manifest_names_the_file(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(UserError) as e:
        load_components(tmp_path)
    assert message in str(e.value) and str(tmp_path / "manifest.json") in str(e.value)


def test_kf_tiny_folder_without_manifest_loads_and_generates(tmp_path):
    for f in BUNDLED_DIR.glob("*.safetensors"):
        shutil.copy(f, tmp_path / f.name)
    pipe = load_pipeline(tmp_path)                                             # roles found by content
    assert pipe.components.text_encoder.kind == "t5"
    wave, sr = pipe.generate(prompt="a bell", duration=1.0, steps=1)
    assert wave.shape == (2, sr)


def test_t5_file_without_a_tokenizer_says_what_to_add(tmp_path):
    from kf_core.components import _tokenizer_for
    from kf_core.loading import save_state_dict
    sd = read_state_dict(BUNDLED_DIR / "t5.safetensors")
    sd["shared.weight"] = torch.zeros(32128, sd["shared.weight"].shape[1])   # a SentencePiece-sized vocabulary
    path = save_state_dict(sd, tmp_path / "t5.safetensors")
    with pytest.raises(UserError, match="without a tokenizer: copy the tokenizer files") as e:
        _tokenizer_for(path, tmp_path, {})
    assert "tokenizer=" not in str(e.value)                                    # no API argument the CLI lacks


def test_unreadable_pickles_never_suggest_weights_only_false(tmp_path):
    (tmp_path / "random.pth").write_bytes(os.urandom(4096))
    torch.save({"layer": nn.Linear(2, 2)}, tmp_path / "module.pth")            # a pickled module, not tensors
    with open(tmp_path / "code.pth", "wb") as f:
        pickle.dump({"w": os.getcwd}, f)                                       # a global a loader must not run
    for name, reason in (("random.pth", "neither a PyTorch zip archive nor a pickle"),
                         ("module.pth", "holds Python objects besides tensors"),
                         ("code.pth", "holds Python objects besides tensors")):
        with pytest.raises(CheckpointError) as e:
            read_state_dict(tmp_path / name)
        msg = str(e.value)
        assert reason in msg and "weights_only" not in msg and "False" not in msg, msg


def test_nan_weights_are_refused_at_load_naming_the_tensor():
    sd = {"weight": torch.ones(4, 3), "bias": torch.tensor([0.0, float("nan"), 0.0, 0.0])}
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 1 tensor\(s\): bias"):
        load_strict(nn.Linear(3, 4), sd, what="x.safetensors")
