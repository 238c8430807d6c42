"""The running batch's KV cache: sequences side by side, left padded (TGI's CausalLMBatch).

Each sequence is prefilled on its own (its cache has batch size 1), then merged in with
``add``: the shorter side is padded on the left with zeros that the attention mask hides.
Every decode step is one forward pass for all rows, with explicit ``position_ids`` (each
row's own count of real tokens) so padding never shifts a row's rotary positions.
``keep`` drops finished or cancelled rows and trims the leading columns that are padding in
every row that is left, so a batch of one carries no padding at all and runs exactly the
forward pass a lone request runs.
"""

from __future__ import annotations

from typing import Any


def supports_batching(model: Any) -> bool:
    """Whether ``model``'s cache can be padded and merged: a ``DynamicCache`` of plain
    full-attention layers (sliding-window or linear-attention layers keep state that left
    padding would corrupt)."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer

        layers = DynamicCache(config=model.config).layers
    except Exception:  # not a transformers model (or no config): serve one at a time
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _pad_left(tensor, columns: int, dim: int):
    """``tensor`` with ``columns`` zeros prepended along ``dim``."""
    if columns == 0:
        return tensor
    import torch

    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class KVBatch:
    """The KV cache and attention mask of the sequences decoding together.

    Rows are addressed by position (0..size-1); ``add`` appends a row, ``keep`` selects rows.
    """

    def __init__(self) -> None:
        self.cache: Any = None  # a DynamicCache holding [rows, heads, columns, head_dim]
        self.lengths: list[int] = []  # real (unpadded) tokens cached per row
        self.mask: Any = None  # bool [rows, columns]; None when no row has padding

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def columns(self) -> int:
        return max(self.lengths, default=0)

    @property
    def padded(self) -> bool:
        return self.mask is not None

    def add(self, cache: Any, length: int) -> None:
        """Append one prefilled sequence (``cache``: batch size 1, ``length`` tokens)."""
        import torch

        if self.cache is None:
            self.cache, self.lengths, self.mask = cache, [length], None
            return
        width = max(self.columns, length)
        ours, theirs = width - self.columns, width - length
        for mine, new in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, ours, 2), _pad_left(new.keys, theirs, 2)])
            mine.values = torch.cat(
                [_pad_left(mine.values, ours, 2), _pad_left(new.values, theirs, 2)]
            )
        self.lengths.append(length)
        if self.mask is None and ours == theirs == 0:
            return  # same length as every row: still no padding anywhere
        mask = self._full_mask(rows=self.size - 1)
        row = torch.ones(1, length, dtype=torch.bool, device=mask.device)
        self.mask = torch.cat([_pad_left(mask, ours, 1), _pad_left(row, theirs, 1)])

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); drop padding columns no remaining row needs."""
        import torch

        if not rows:
            self.cache, self.lengths, self.mask = None, [], None
            return
        if rows == list(range(self.size)):
            return
        lengths = [self.lengths[i] for i in rows]
        start = self.columns - max(lengths)  # leading columns that are padding in every row
        index = torch.tensor(rows, device=self.cache.layers[0].keys.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]
        self.lengths = lengths
        if self.mask is not None:
            width = max(lengths)
            self.mask = None if min(lengths) == width else self.mask[index, start:]

    def _full_mask(self, rows: int):
        """The mask of the first ``rows`` rows (all ones when nothing is padded)."""
        import torch

        if self.mask is not None:
            return self.mask
        width = max(self.lengths[:rows])
        return torch.ones(rows, width, dtype=torch.bool, device=self.cache.layers[0].keys.device)

    def forward(self, model: Any, tokens: list[int]):
        """One decode step: feed ``tokens[i]`` to row ``i``; returns logits ``[rows, vocab]``."""
        import torch

        device = self.cache.layers[0].keys.device
        input_ids = torch.tensor(tokens, device=device).view(-1, 1)
        if self.mask is None:
            # No padding anywhere: exactly the call a lone sequence makes (positions follow
            # from the cache length, no mask is built).
            out = model(
                input_ids=input_ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1
            )
        else:
            ones = torch.ones(self.size, 1, dtype=torch.bool, device=device)
            mask = torch.cat([self.mask, ones], dim=1)
            positions = torch.tensor(self.lengths, device=device).view(-1, 1)
            out = model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
            self.mask = mask
        self.cache = out.past_key_values
        self.lengths = [n + 1 for n in self.lengths]
        return out.logits[:, -1, :]
