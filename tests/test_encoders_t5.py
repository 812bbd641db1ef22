"""T5 text encoder: tiny shapes and masks, local loading (folder / single file), clear errors."""
import pytest
import torch

from kf_core.encoders.t5 import TINY_T5, T5TextEncoder, detect_t5_config
from kf_core.loading.state import CheckpointError, read_state_dict, save_state_dict

PROMPTS = ["a dog barking", "", "rain on a tin roof while thunder rolls in the distance"]


@pytest.fixture(scope="module")
def tiny():
    return T5TextEncoder.tiny(seed=0, max_length=32)


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    return tiny.save_pretrained(tmp_path_factory.mktemp("t5tiny"))


def test_tiny_shapes_and_padding_mask(tiny):
    feats, mask = tiny.encode(PROMPTS)
    assert feats.shape == (3, 32, 128) and feats.dtype == torch.float32
    assert mask.dtype == torch.bool
    # byte tokens + EOS; the long prompt is truncated to max_length (EOS kept)
    assert mask.sum(1).tolist() == [len("a dog barking") + 1, 1, 32]
    assert (feats[~mask] == 0).all()
    assert (feats[mask].abs().sum(-1) > 0).all()


def test_features_do_not_depend_on_batch_neighbours(tiny):
    alone, mask_alone = tiny.encode(["a dog barking"])
    batched, _ = tiny.encode(PROMPTS)
    torch.testing.assert_close(alone[0], batched[0], atol=1e-5, rtol=1e-5)
    other, _ = tiny.encode(["a cat meowing"])
    assert not torch.allclose(alone, other)


def test_tiny_is_deterministic():
    a, b = T5TextEncoder.tiny(seed=5, max_length=8), T5TextEncoder.tiny(seed=5, max_length=8)
    assert torch.equal(a.encode(["hi"])[0], b.encode(["hi"])[0])


def test_reload_from_saved_folder(tiny, saved):
    again = T5TextEncoder.from_pretrained(saved, max_length=32)
    assert again.model.config.d_model == 128 and again.model.config.num_layers == TINY_T5["num_layers"]
    torch.testing.assert_close(again.encode(PROMPTS), tiny.encode(PROMPTS))


def test_single_file_with_decoder_keys_and_tokenizer_folder(tiny, saved, tmp_path):
    sd = read_state_dict(saved / "model.safetensors")
    sd = {k: v for k, v in sd.items() if k != "encoder.embed_tokens.weight"}  # tied copy often absent
    sd["decoder.final_layer_norm.weight"] = torch.ones(128)  # a full T5 file: decoder is dropped
    sd["lm_head.weight"] = torch.zeros(384, 128)
    path = save_state_dict(sd, tmp_path / "t5_full.safetensors")
    enc = T5TextEncoder.from_pretrained(path, tokenizer=saved, max_length=32)
    torch.testing.assert_close(enc.encode(PROMPTS), tiny.encode(PROMPTS))


def test_config_inferred_from_shapes(tiny):
    cfg = detect_t5_config(tiny.model.state_dict())
    assert (cfg.d_model, cfg.num_heads, cfg.d_kv, cfg.d_ff, cfg.num_layers, cfg.vocab_size) == (128, 4, 32, 256, 2, 384)
    assert not cfg.is_gated_act
    gated = {k.replace("DenseReluDense.wi.", "DenseReluDense.wi_0."): v for k, v in tiny.model.state_dict().items()}
    gated.update({k.replace("wi_0", "wi_1"): v for k, v in gated.items() if "wi_0" in k})
    assert detect_t5_config(gated).is_gated_act  # T5 v1.1 layout


def test_missing_files_say_what_is_missing(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="T5 weights not found"):
        T5TextEncoder.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no weights: expected one of model.safetensors"):
        T5TextEncoder.from_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match="pass tokenizer="):
        T5TextEncoder.from_pretrained(saved / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer files"):
        T5TextEncoder.from_pretrained(saved / "model.safetensors", tokenizer=tmp_path / "empty")


def test_wrong_kind_of_file_is_rejected(mmaudio_fixtures, saved):
    with pytest.raises(CheckpointError, match="holds a Synchformer visual encoder.*not a T5 text encoder"):
        T5TextEncoder.from_pretrained(mmaudio_fixtures / "synchformer_small.safetensors", tokenizer=saved)
