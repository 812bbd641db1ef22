import pytest
import torch
from torch import nn

from kf_core.loading import CheckpointError, load_strict, read_state_dict, save_state_dict


def test_round_trip_is_exact(tmp_path):
    m = nn.Linear(3, 4)
    path = save_state_dict(m.state_dict(), tmp_path / "w.safetensors")
    m2 = nn.Linear(3, 4)
    load_strict(m2, read_state_dict(path))
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])


def test_strict_load_names_bad_keys():
    sd = {"weight": torch.zeros(5, 3), "extra": torch.zeros(1)}
    with pytest.raises(CheckpointError) as e:
        load_strict(nn.Linear(3, 4), sd, what="x.safetensors")
    msg = str(e.value)
    assert "weight (5, 3) vs expected (4, 3)" in msg and "missing: bias" in msg and "unexpected: extra" in msg


def test_meta_module_is_materialised():
    with torch.device("meta"):
        m = nn.Linear(3, 4)
    load_strict(m, {"weight": torch.ones(4, 3, dtype=torch.float16), "bias": torch.zeros(4)})
    assert m.weight.device.type == "cpu" and m.weight.dtype == torch.float32


def test_bad_files_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(tmp_path / "empty.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="truncated"):
        read_state_dict(tmp_path / "junk.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="weights-only"):
        read_state_dict(tmp_path / "junk.pth")


def test_wrapped_pickle_is_unwrapped(tmp_path):
    torch.save({"generator": {"w": torch.ones(2)}}, tmp_path / "g.pt")
    assert set(read_state_dict(tmp_path / "g.pt")) == {"w"}
