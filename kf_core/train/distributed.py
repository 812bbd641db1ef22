"""torch.distributed plumbing: init from torchrun's environment, wrapping, reductions, full state dicts.

Launch: `torchrun --nproc_per_node N -m kf_core train ...`. The backend is gloo on CPU and NCCL
on CUDA. Wrapping is DDP, or FSDP (fully_shard) for models too large to replicate (3 B / 6 B).
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init_distributed", "wrap", "all_reduce_mean", "barrier", "close",
           "model_state", "load_model_state", "optimizer_state", "load_optimizer_state"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size, and the device it computes on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    fsdp: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device: str | torch.device, *, fsdp: bool = False, timeout_s: float = 600) -> DistContext:
    """Join the process group torchrun describes (RANK/WORLD_SIZE/LOCAL_RANK); single process otherwise.

    `device` is the device *type* to train on ("cpu" or "cuda"); each rank takes cuda:LOCAL_RANK.
    """
    device = torch.device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        log.info("rank %d/%d joined the %s process group", rank, world, backend)
    return DistContext(rank=rank, world=world, local_rank=local, device=device, fsdp=fsdp)


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """Module -> DDP (or FSDP-sharded) module for this context; unchanged in a single process."""
    if not ctx.distributed:
        return module
    if ctx.fsdp:
        from torch.distributed.fsdp import fully_shard
        # shard each direct child that holds parameters, then the root (FSDP2's recommended layout)
        for child in module.modules():
            if child is not module and isinstance(child, nn.ModuleList):
                for block in child:
                    fully_shard(block)
        fully_shard(module)
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # FlowObjective ties every parameter into the loss, so no unused-parameter search is needed
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def all_reduce_mean(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of `x` over ranks (x itself in a single process)."""
    if not ctx.distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / ctx.world


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def close(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def model_state(model: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict of `model` on CPU; under FSDP every rank must call this."""
    if ctx.fsdp and ctx.distributed:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict
        return get_model_state_dict(model, options=_options())
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict, ctx: DistContext) -> None:
    if ctx.fsdp and ctx.distributed:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict
        set_model_state_dict(model, state, options=_options())
    else:
        model.load_state_dict(state, strict=True)


def optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, ctx: DistContext) -> dict:
    if ctx.fsdp and ctx.distributed:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict
        return get_optimizer_state_dict(model, opt, options=_options())
    return opt.state_dict()


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict, ctx: DistContext) -> None:
    if ctx.fsdp and ctx.distributed:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict
        set_optimizer_state_dict(model, opt, state, options=_options())
    else:
        opt.load_state_dict(state)
