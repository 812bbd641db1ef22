"""`python -m kf_core train --preset kf-tiny --data synthetic:N --steps S --out DIR` on the CPU (issue 6's
CLI contract, with smaller N and S): the bundled encoders and codec extract the synthetic clips, the
flow trainer runs, and the exported weights load as a DiT."""
from __future__ import annotations

import math

from kf_core.__main__ import main
from kf_core.loading.dit import load_dit
from kf_core.train.features import FeatureShards
from kf_core.train.tiny_card import read_curve


def test_train_cli_on_synthetic_data_with_the_bundled_codec(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "kf-tiny", "--data", "synthetic:6", "--steps", "4", "--batch-size", "3",
            "--out", str(out), "--log-every", "1", "--no-progress", "--no-tensorboard"]
    assert main(args) == 0
    data = FeatureShards([out / "features" / "synthetic_6"])
    assert len(data) == 6 and data[0].sync is not None and data[0].text is not None
    rows = read_curve(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in rows)
    model, info = load_dit(out / "dit.safetensors")
    assert model.cfg.latent_dim == 16
    assert "step 4: loss" in capsys.readouterr().out
