"""Layer-level pipeline parallelism for CoMeT over ``torch.distributed`` (gloo on CPU, nccl on GPU).

The chunks of a batch are split contiguously over the ranks (num_chunks % world == 0). Every rank
holds the whole model. At every layer, rank r receives that layer's memory (global memory, gate
state, temporary FIFO) from rank r - 1, runs the layer on its chunks, and sends the updated memory
to rank r + 1: a (layer x rank) wavefront. Sends and receives are autograd functions, so the
backward pass carries the gradient of the memory back from rank r + 1 to rank r (official
``distributed/p2p.py``). Each rank's loss is its sum of token CE divided by the token count of the
whole batch, so the ranks' losses add up to the single-process loss, and all-reducing the
gradients (SUM) gives the single-process gradients.

The three memory tensors of a layer travel as one packed tensor with tag = layer index, so the
order of messages can never mix up two tensors of equal shape.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from longlore.comet.layout import BatchChunk
from longlore.comet.loss import token_ce_sum
from longlore.comet.memory import LayerMemory
from longlore.comet.model import CometModel


class _SendWithGrad(torch.autograd.Function):
    """Forward: send to ``dst``. Backward: receive the gradient from ``dst`` and add it."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dst: int, tag: int) -> torch.Tensor:
        ctx.dst, ctx.tag = dst, tag
        dist.send(tensor.contiguous(), dst=dst, tag=tag)
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        received = torch.empty_like(grad)
        dist.recv(received, src=ctx.dst, tag=ctx.tag)
        return grad + received, None, None


class _RecvWithGrad(torch.autograd.Function):
    """Forward: receive from ``src`` into ``buffer``. Backward: send the gradient back to ``src``."""

    @staticmethod
    def forward(ctx, buffer: torch.Tensor, src: int, tag: int) -> torch.Tensor:
        ctx.src, ctx.tag = src, tag
        out = torch.empty_like(buffer)
        dist.recv(out, src=src, tag=tag)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        dist.send(grad.contiguous(), dst=ctx.src, tag=ctx.tag)
        return None, None, None


def send_with_grad(tensor: torch.Tensor, dst: int, tag: int) -> torch.Tensor:
    """Send ``tensor``; use the returned tensor downstream so backward receives its gradient."""
    return _SendWithGrad.apply(tensor, dst, tag)


def recv_with_grad(
    shape: tuple[int, ...], dtype: torch.dtype, src: int, tag: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Receive a tensor whose gradient is sent back to ``src`` in backward."""
    buffer = torch.empty(
        shape, dtype=dtype, device=device, requires_grad=True
    )  # requires_grad puts the node in the graph
    return _RecvWithGrad.apply(buffer, src, tag)


def _pack(mem: LayerMemory, chunk: BatchChunk) -> torch.Tensor:
    """(R, 2G + T, D): global memory, gate state, temporary FIFO (padded to the next chunk's width)."""
    parts = []
    if chunk.n_global_in:
        parts += [mem.global_mem, mem.global_state]
    if chunk.temp_width:
        parts.append(mem.temp[:, -chunk.temp_width :])
    return torch.cat(parts, dim=1)


def _unpack(packed: torch.Tensor, chunk: BatchChunk) -> LayerMemory:
    g = chunk.n_global_in
    mem = LayerMemory(temp_counts=list(chunk.temp_counts))
    if g:
        mem.global_mem, mem.global_state = packed[:, :g], packed[:, g : 2 * g]
    if chunk.temp_width:
        mem.temp = packed[:, 2 * g :]
    return mem


def pipeline_loss(model: CometModel, chunks: list[BatchChunk], rank: int, world: int) -> torch.Tensor:
    """This rank's share of the batch loss (sum over ranks = the single-process mean loss).

    Call ``backward()`` on it on every rank at the same time, then all-reduce the gradients.
    """
    if len(chunks) % world:
        raise ValueError(f"{len(chunks)} chunks cannot be split evenly over {world} ranks")
    per = len(chunks) // world
    mine = list(range(rank * per, (rank + 1) * per))
    n_total = sum(int((c.labels != -100).sum()) for c in chunks)
    state = model.new_state(max(r for c in chunks for r in c.rows) + 1)
    contexts = {ci: model.chunk_context(chunks[ci]) for ci in mine}
    hs = {ci: contexts[ci][0] for ci in mine}
    first, last = chunks[mine[0]], mine[-1]
    dtype = hs[mine[0]].dtype
    for index in range(len(model.layers)):
        if rank > 0:
            width = 2 * first.n_global_in + first.temp_width
            if width:
                shape = (len(first.rows), width, hs[mine[0]].shape[-1])
                received = recv_with_grad(shape, dtype, rank - 1, index, device=hs[mine[0]].device)
                state.put(index, first.rows, _unpack(received, first))
        for ci in mine:
            mem = state.get(index, chunks[ci].rows)
            hs[ci], mem = model.layer_chunk(index, hs[ci], chunks[ci], mem, contexts[ci][1], contexts[ci][2])
            state.put(index, chunks[ci].rows, mem)
        if rank < world - 1:
            following = chunks[last + 1]
            if 2 * following.n_global_in + following.temp_width:
                sent = send_with_grad(_pack(state.get(index, following.rows), following), rank + 1, index)
                # The sent memory feeds no local computation; a zero-weighted use ties it into this
                # rank's graph so backward reaches the send node (else backward P2P deadlocks).
                hs[last] = hs[last] + 0.0 * sent.sum()
    total = hs[mine[0]].new_zeros(())
    for ci in mine:
        s, _ = token_ce_sum(model.norm(hs[ci]), chunks[ci].labels.to(hs[ci].device), model.lm_head, chunks[ci].weights)
        total = total + s
    return total / max(1, n_total)


def all_reduce_grads(model: torch.nn.Module) -> None:
    """Sum every parameter's gradient over the ranks (each rank saw its chunks only)."""
    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def _check_worker(
    rank: int, world: int, init_file: str, out_dir: str, spec: str, config: dict, ids: list[list[int]]
) -> None:
    """mp.spawn target: run the pipeline on a tiny model and save loss + gradients per rank."""
    from longlore.comet.config import CometConfig
    from longlore.core.models import load_causal_lm

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        base, tokenizer = load_causal_lm(spec)
        model = CometModel(base, tokenizer, CometConfig(**config))
        chunks = model.prepare(ids)
        loss = pipeline_loss(model, chunks, rank, world)
        loss.backward()
        all_reduce_grads(model)
        summed = loss.detach().clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"loss": summed, "local_loss": loss.detach(), "grads": grads}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_pipeline_check(out_dir: str, spec: str, config: dict, ids: list[list[int]], world: int = 2) -> list[dict]:
    """Spawn ``world`` gloo ranks running :func:`pipeline_loss` + backward; return their results."""
    import torch.multiprocessing as mp

    init_file = f"{out_dir}/dist_init"
    mp.spawn(_check_worker, args=(world, init_file, out_dir, spec, config, ids), nprocs=world, join=True)
    return [torch.load(f"{out_dir}/rank{r}.pt") for r in range(world)]
