"""Per-layer memory modules and the explicit memory state.

Shape legend: R rows (examples) of a batch chunk, G global slots, T temporary entries, D hidden.

Global memory (official ``MemoryRecurrentNet``)::

    x = RMSNorm(h at the G global beacons)
    state = x                                   (first chunk)
    g = sigmoid(W_g [x; state] (+ b));  state = g * state + (1 - g) * x   (later chunks; one scalar per slot)
    memory = state + Up(Down(state))            (rank-r residual bottleneck)

Temporary memory (official ``MemoryProjectionNet``): RMSNorm + the same bottleneck on the outputs
at each ``<beacon>``, pushed into a FIFO that keeps the newest B entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


class Bottleneck(nn.Module):
    """x + Up(Down(x)) with a rank-``rank`` inner dimension."""

    def __init__(self, hidden: int, rank: int) -> None:
        super().__init__()
        self.down_proj = nn.Linear(hidden, rank, bias=False)
        self.up_proj = nn.Linear(rank, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up_proj(self.down_proj(x))


class GlobalMemoryNet(nn.Module):
    """The gated update of the G global slots."""

    def __init__(self, hidden: int, rank: int, gate_bias: float | None = None) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(hidden)  # eps = finfo(dtype).eps, as the official nn.RMSNorm(hidden_size)
        self.g_proj = nn.Linear(2 * hidden, 1, bias=gate_bias is not None)  # official: no bias
        if gate_bias is not None:
            nn.init.constant_(self.g_proj.bias, gate_bias)
        self.o_proj = Bottleneck(hidden, rank)

    def forward(self, beacons: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """beacons (R, G, D), state (R, G, D) or None -> (memory to inject, new state)."""
        x = self.norm(beacons)
        if state is None:
            state = x
        else:
            gate = torch.sigmoid(self.g_proj(torch.cat([x, state], dim=-1)))  # (R, G, 1)
            state = gate * state + (1 - gate) * x
        return self.o_proj(state), state


class TempMemoryNet(nn.Sequential):
    """RMSNorm + bottleneck on the outputs at temporary beacons."""

    def __init__(self, hidden: int, rank: int) -> None:
        super().__init__(nn.RMSNorm(hidden, eps=1e-12), Bottleneck(hidden, rank))


class LayerMemoryNets(nn.Module):
    """The memory modules of one decoder layer (either may be absent)."""

    def __init__(
        self, hidden: int, rank: int, use_global: bool, use_temp: bool, gate_bias: float | None = None
    ) -> None:
        super().__init__()
        self.global_net = GlobalMemoryNet(hidden, rank, gate_bias) if use_global else None
        self.temp_net = TempMemoryNet(hidden, rank) if use_temp else None


@dataclass
class LayerMemory:
    """The memory one layer hands to the next chunk, for the R rows of a batch chunk.

    ``temp`` is left-padded: row r's ``temp_counts[r]`` valid entries are its last ones, newest last.
    """

    global_mem: torch.Tensor | None = None  # (R, G, D)
    global_state: torch.Tensor | None = None  # (R, G, D)
    temp: torch.Tensor | None = None  # (R, T, D)
    temp_counts: list[int] = field(default_factory=list)


def enqueue(
    temp: torch.Tensor | None, counts: list[int], new: torch.Tensor, new_counts: list[int], budget: int
) -> tuple[torch.Tensor, list[int]]:
    """FIFO push per row: keep the newest ``budget`` of (old valid entries, new valid entries)."""
    rows, kept = [], []
    for r in range(new.shape[0]):
        old = temp[r, temp.shape[1] - counts[r] :] if temp is not None and counts[r] else new[r, :0]
        row = torch.cat([old, new[r, : new_counts[r]]], dim=0)[-budget:]
        rows.append(row)
        kept.append(row.shape[0])
    width = max(kept)
    padded = torch.stack([torch.cat([row.new_zeros(width - row.shape[0], row.shape[1]), row]) for row in rows])
    return padded, kept


class MemoryState:
    """Memory of every layer for a batch of independent streams; ``reset()`` empties it.

    Stored per example so rows of different lengths can stop early (ragged batches): ``get``
    stacks the rows a chunk needs, ``put`` writes them back.
    """

    def __init__(self, num_layers: int, batch_size: int = 1) -> None:
        self.num_layers = num_layers
        self.batch_size = batch_size
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next chunk is the first chunk of a new stream."""
        self._global = [[None] * self.batch_size for _ in range(self.num_layers)]
        self._state = [[None] * self.batch_size for _ in range(self.num_layers)]
        self._temp = [[None] * self.batch_size for _ in range(self.num_layers)]
        self.chunks_seen = [0] * self.batch_size
        self.beacons_seen = [0] * self.batch_size

    def get(self, layer: int, rows: list[int]) -> LayerMemory:
        g, s, t = self._global[layer], self._state[layer], self._temp[layer]
        have = [g[r] is not None for r in rows]
        counts = [0 if t[r] is None else t[r].shape[0] for r in rows]
        temp = None
        if max(counts, default=0) > 0:
            ref = next(t[r] for r in rows if t[r] is not None)
            width = max(counts)
            temp = torch.stack(
                [
                    torch.cat([ref.new_zeros(width - c, ref.shape[1])] + ([t[r]] if c else []))
                    for r, c in zip(rows, counts)
                ]
            )
        global_mem = global_state = None
        if any(have):  # rows without memory yet (a 1-chunk prompt beside longer ones) get zeros, masked out
            ref = next(g[r] for r in rows if g[r] is not None)
            global_mem = torch.stack([g[r] if g[r] is not None else torch.zeros_like(ref) for r in rows])
            global_state = torch.stack([s[r] if s[r] is not None else torch.zeros_like(ref) for r in rows])
        return LayerMemory(global_mem=global_mem, global_state=global_state, temp=temp, temp_counts=counts)

    def put(self, layer: int, rows: list[int], mem: LayerMemory) -> None:
        for i, r in enumerate(rows):
            if mem.global_mem is not None:
                self._global[layer][r] = mem.global_mem[i]
                self._state[layer][r] = mem.global_state[i]
            if mem.temp is not None and mem.temp_counts[i]:
                self._temp[layer][r] = mem.temp[i, mem.temp.shape[1] - mem.temp_counts[i] :]

    def tensors(self, layer: int, row: int) -> dict[str, torch.Tensor | None]:
        """One row's memory at one layer (for inspection and tests)."""
        return {
            "global_mem": self._global[layer][row],
            "global_state": self._state[layer][row],
            "temp": self._temp[layer][row],
        }

    def repeat(self, batch_size: int) -> MemoryState:
        """A state of ``batch_size`` rows that all start from row 0 of this one (the tensors are
        shared, never written in place: each later chunk replaces a row's entries)."""
        out = MemoryState(self.num_layers, batch_size)
        for src, dst in ((self._global, out._global), (self._state, out._state), (self._temp, out._temp)):
            for layer in range(self.num_layers):
                dst[layer] = [src[layer][0]] * batch_size
        out.chunks_seen = [self.chunks_seen[0]] * batch_size
        out.beacons_seen = [self.beacons_seen[0]] * batch_size
        return out

    def detach_(self) -> MemoryState:
        """Cut the autograd history (streaming inference, truncated backprop)."""
        for store in (self._global, self._state, self._temp):
            for layer in store:
                for r, x in enumerate(layer):
                    if x is not None:
                        layer[r] = x.detach()
        return self

    def nbytes(self) -> int:
        """Bytes held by the memory tensors: bounded by layers x (2G + B) x D per row."""
        return sum(
            x.numel() * x.element_size()
            for store in (self._global, self._state, self._temp)
            for layer in store
            for x in layer
            if x is not None
        )
