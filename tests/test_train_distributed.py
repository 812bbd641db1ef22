"""Two-process gloo training on CPU: finite losses, identical parameters on both ranks."""
from __future__ import annotations

import math
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from kf_core.train.distributed import init_distributed, close
from kf_core.train.flow import FlowTrainConfig, FlowTrainer

STEPS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from test_train_flow import CODEC, StandInDiT, make_records
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu", timeout_s=30)
    try:
        torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        cfg = FlowTrainConfig(batch_size=4, lr=1e-2, seed=5)
        trainer = FlowTrainer(StandInDiT(), cfg, make_records(16, durations=(1.0, 0.75)), codec=CODEC, ctx=ctx)
        init = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
        losses = [trainer.train_step()["loss"] for _ in range(STEPS)]
        flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        first_batch = trainer.order.state_dict()
        torch.save({"losses": losses, "params": gathered, "order": first_batch, "init": init,
                    "first": trainer.order._perm(0)[rank * 4:rank * 4 + 4]},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        close(ctx)


def test_two_process_gloo_keeps_ranks_identical(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert len(r0["losses"]) == STEPS and all(math.isfinite(x) for x in r0["losses"] + r1["losses"])
    assert r0["losses"] == r1["losses"]  # the logged loss is the all-reduced mean
    a, b = r0["params"]
    assert torch.equal(a, b), "parameters diverged across ranks"
    assert not torch.equal(a, r0["init"])  # training moved the weights
    assert set(r0["first"].tolist()).isdisjoint(r1["first"].tolist())  # each rank its own clips
    assert r0["order"] == r1["order"] and r0["order"]["batch"] == 2  # 16 clips / (4 x 2) per epoch
