"""Encoder file-kind detection on real key layouts."""
import pytest

from kf_core.encoders.load import detect_kind, read_keys, require_kind
from kf_core.loading.state import CheckpointError


@pytest.mark.parametrize("name,kind", [("synchformer_small", "synchformer"), ("network_small", "flow_network"),
                                       ("network_small_v1", "flow_network"), ("vae_small", "vae"),
                                       ("bigvgan_small", "vocoder")])
def test_fixture_files_are_recognised(mmaudio_fixtures, name, kind):
    assert detect_kind(read_keys(mmaudio_fixtures / f"{name}.safetensors")) == kind


def test_clip_and_t5_layouts():
    assert detect_kind(["visual.conv1.weight", "visual.proj", "token_embedding.weight"]) == "clip"
    assert detect_kind(["shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight"]) == "t5"
    assert detect_kind(["foo.weight"]) is None


def test_require_kind_names_both_sides():
    with pytest.raises(CheckpointError, match=r"x.pth holds an unrecognised model \(keys like foo.weight\), "
                                              r"not a T5 text encoder\. Give this loader a T5 checkpoint"):
        require_kind(["foo.weight"], "t5", "dir/x.pth")
    require_kind(["visual.conv1.weight"], "clip", "ok.safetensors")
