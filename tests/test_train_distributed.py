"""Two-process gloo training on CPU, spawned once for the module: DDP keeps the ranks identical; FSDP2
on the real kf-tiny DiT follows the single-process loss curve, and its sharded checkpoint resumes
in one process."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kf_core.loading.state import read_state_dict
from kf_core.model import build_model
from kf_core.train.distributed import DistContext, close, init_distributed
from kf_core.train.features import FeatureRecord
from kf_core.train.flow import FlowTrainConfig, FlowTrainer
from kf_core.train.runner import RunOptions, run

STEPS = 4
CODEC = {"sample_rate": 44100, "hop": 512, "latent_downsample": 2}
FSDP_CFG = FlowTrainConfig(batch_size=4, lr=3e-3, seed=7, p_drop_video=0.3, p_drop_text=0.3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_records(n: int = 12) -> list[FeatureRecord]:
    """Random kf-tiny features of 0.7–1.5 s clips: the batches are padded, differently on each rank."""
    from kf_core.config import SeqConfig
    g = torch.Generator().manual_seed(11)
    out = []
    for i in range(n):
        seq = SeqConfig(0.7 + 0.1 * (i % 9), **CODEC)
        out.append(FeatureRecord(
            latent_mean=torch.randn(seq.latent_len, 16, generator=g), latent_std=torch.full((seq.latent_len, 16), 0.1),
            duration=seq.duration, visual=torch.randn(seq.visual_len, 128, generator=g),
            sync=torch.randn(seq.sync_len, 128, generator=g), text=torch.randn(3 + i % 4, 128, generator=g)))
    return out


def fsdp_run(out, ctx: DistContext, steps: int = STEPS) -> list[dict]:
    torch.manual_seed(0)  # the same initial weights on every rank and in the single process
    trainer = FlowTrainer(build_model("kf-tiny"), FSDP_CFG, tiny_records(), codec=CODEC, ctx=ctx)
    opts = RunOptions(out, steps=steps, log_every=1, ckpt_every=2, progress=False, tensorboard=False,
                      export_name="dit")
    return run(trainer, opts, config={"test": True}, export_config={}, ctx=ctx)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from test_train_flow import CODEC as STAND_IN_CODEC
    from test_train_flow import StandInDiT, make_records
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu", timeout_s=60)
    try:
        # DDP: the stand-in model, global batch 8 = 4 per rank
        torch.manual_seed(0)
        trainer = FlowTrainer(StandInDiT(), FlowTrainConfig(batch_size=8, lr=1e-2, seed=5),
                              make_records(16, durations=(1.0, 0.75)), codec=STAND_IN_CODEC, ctx=ctx)
        init = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
        losses = [trainer.train_step()["loss"] for _ in range(STEPS)]
        flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        torch.save({"losses": losses, "params": gathered, "order": trainer.order.state_dict(), "init": init,
                    "first": trainer.order._perm(0)[rank * 4:rank * 4 + 4]},
                   os.path.join(out_dir, f"ddp{rank}.pt"))
        # FSDP2: the real kf-tiny DiT, sharded over both ranks
        fsdp_ctx = DistContext(rank=ctx.rank, world=ctx.world, local_rank=ctx.local_rank, device=ctx.device,
                               fsdp=True)
        rows = fsdp_run(os.path.join(out_dir, "fsdp"), fsdp_ctx)
        if rank == 0:
            with open(os.path.join(out_dir, "fsdp_rows.json"), "w") as f:
                json.dump(rows, f)
    finally:
        close(ctx)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method="spawn")
    return out


def test_two_process_ddp_keeps_ranks_identical(two_ranks):
    r0 = torch.load(two_ranks / "ddp0.pt", weights_only=True)
    r1 = torch.load(two_ranks / "ddp1.pt", weights_only=True)
    assert len(r0["losses"]) == STEPS and all(math.isfinite(x) for x in r0["losses"] + r1["losses"])
    assert r0["losses"] == r1["losses"]  # the logged loss is the all-reduced mean
    a, b = r0["params"]
    assert torch.equal(a, b), "parameters diverged across ranks"
    assert not torch.equal(a, r0["init"])  # training moved the weights
    assert set(r0["first"].tolist()).isdisjoint(r1["first"].tolist())  # each rank its own clips
    assert r0["order"] == r1["order"] and r0["order"]["batch"] == 2  # 16 clips / (4 x 2) per epoch


def test_fsdp_on_two_ranks_follows_one_process_and_its_sharded_checkpoint_resumes_on_one(two_ranks, tmp_path):
    two = json.loads((two_ranks / "fsdp_rows.json").read_text())
    ckpts = sorted(p.name for p in (two_ranks / "fsdp" / "checkpoints").iterdir())
    assert ckpts == ["step_2", "step_4"] and (two_ranks / "fsdp" / "checkpoints" / "step_2" / "meta.json").is_file()
    one = fsdp_run(tmp_path / "one", DistContext())
    loss2, loss1 = [r["loss"] for r in two], [r["loss"] for r in one]
    assert loss1[0] != loss1[-1] and all(math.isfinite(x) for x in loss2)
    assert loss2 == pytest.approx(loss1, rel=1e-4)                      # the same run, up to rounding
    w2 = read_state_dict(two_ranks / "fsdp" / "dit_ema.safetensors")
    w1 = read_state_dict(tmp_path / "one" / "dit_ema.safetensors")
    assert set(w2) == set(w1) and all(torch.allclose(w2[k], w1[k], atol=1e-5) for k in w1)
    # the checkpoint the two ranks wrote at step 2 resumes in one process and retraces steps 3-4
    cut = tmp_path / "cut"
    shutil.copytree(two_ranks / "fsdp" / "checkpoints" / "step_2", cut / "checkpoints" / "step_2")
    resumed = fsdp_run(cut, DistContext())
    assert [r["step"] for r in resumed] == [3, 4]
    assert [r["loss"] for r in resumed] == pytest.approx(loss2[2:], rel=1e-4)
    w = read_state_dict(cut / "dit.safetensors")
    ref = read_state_dict(two_ranks / "fsdp" / "dit.safetensors")
    assert all(torch.allclose(w[k], ref[k], atol=1e-5) for k in ref)
