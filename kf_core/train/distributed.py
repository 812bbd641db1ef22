"""torch.distributed plumbing: init from torchrun's environment, wrapping, reductions, state dicts.

Launch: `torchrun --nproc_per_node N -m kf_core train ...` (multi-node: README "Training at scale").
The backend is gloo on CPU and NCCL on CUDA. Wrapping is DDP (the model replicated on every rank),
or with `fsdp=True` FSDP2 (`torch.distributed.fsdp.fully_shard`): parameters, gradients and
optimiser state are sharded across ranks, each transformer block its own all-gather unit; on CUDA
the blocks compute in bf16 with fp32 gradient reduction (`MixedPrecisionPolicy`), on CPU in fp32.

State dicts are keyed by parameter name (torch.distributed.checkpoint.state_dict), sharded DTensors
under FSDP and plain tensors otherwise, so a checkpoint written by N ranks loads on M.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.tensor import DTensor

__all__ = ["DistContext", "init_distributed", "cpu_threads", "wrap", "all_reduce_mean", "all_reduce_sum", "barrier", "close",
           "model_state", "load_model_state", "optimizer_state", "load_optimizer_state", "is_sharded",
           "full_tensor"]

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

    @property
    def sharded(self) -> bool:
        """Parameters and optimiser state are split across ranks (FSDP over more than one rank)."""
        return self.fsdp and self.distributed


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
    """Module -> DDP (or FSDP2-sharded) module for this context; unchanged in a single process."""
    if not ctx.distributed:
        return module
    if ctx.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if ctx.device.type == "cuda" else MixedPrecisionPolicy())  # gloo/CPU: fp32 throughout
        # each block of every ModuleList is one unit (all-gathered just before it runs), the rest
        # (projections, embeddings, final layer) goes with the root
        for child in module.modules():
            if child is not module and isinstance(child, nn.ModuleList):
                for block in child:
                    fully_shard(block, mp_policy=mp)
        fully_shard(module, mp_policy=mp)
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # FlowObjective ties every parameter into the loss, so no unused-parameter search is needed
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def cpu_threads(requested: int, ctx: DistContext) -> int:
    """Torch CPU threads for this process: `requested` if > 0, else this rank's share of the cores
    idle now (cores minus the 1-minute load average, at least 1).

    On a CPU that other jobs share, one more OpenMP thread than there are idle cores makes every
    step wait for a descheduled thread: on 2 busy cores a kf-tiny step took 20–50 s with 2 threads
    and 4–7 s with 1.
    """
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    idle = cores - (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ctx.distributed else 1
    return max(1, min(cores, int(idle + 0.5)) // max(1, per_node))


def all_reduce_mean(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of `x` over ranks (x itself in a single process)."""
    if not ctx.distributed:
        return x
    return all_reduce_sum(x, ctx) / ctx.world


def all_reduce_sum(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum of `x` over ranks (x itself in a single process)."""
    if not ctx.distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def barrier(ctx: DistContext | None) -> None:
    if ctx is not None and ctx.distributed:
        dist.barrier()


def close(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def is_sharded(state) -> bool:
    """Whether a (nested) state dict holds DTensor shards."""
    if isinstance(state, DTensor):
        return True
    if isinstance(state, dict):
        return any(is_sharded(v) for v in state.values())
    return False


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A DTensor shard -> the whole tensor (collective: every rank calls it); a tensor -> itself."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def _options(full: bool) -> StateDictOptions:
    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def model_state(model: nn.Module, ctx: DistContext, *, sharded: bool = False) -> dict[str, torch.Tensor]:
    """`model`'s state: whole tensors on CPU, or with `sharded` (under FSDP) this rank's DTensor shards.
    Under FSDP every rank must call this."""
    if ctx.sharded:
        return get_model_state_dict(model, options=_options(not sharded))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_model_state(model: nn.Module, state: dict, ctx: DistContext) -> None:
    """Load whole or sharded tensors (from any number of ranks) into `model`."""
    if ctx.sharded:
        set_model_state_dict(model, state, options=_options(not is_sharded(state)))
    else:
        model.load_state_dict({k: full_tensor(v) for k, v in state.items()}, strict=True)


def optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, ctx: DistContext, *,
                    sharded: bool = False) -> dict:
    """The optimiser state keyed by parameter name (whole, or with `sharded` this rank's shards)."""
    return get_optimizer_state_dict(model, opt, options=_options(not (sharded and ctx.sharded)))


def load_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict, ctx: DistContext) -> None:
    set_optimizer_state_dict(model, opt, state, options=_options(not is_sharded(state)))
