"""The last encoder layer at the first position only, for heads that read nothing else.

A sequence-classification head on a BERT-family encoder (BERT's pooler, RoBERTa's and
ELECTRA's classification heads) reads the last layer's output at the first position ([CLS],
``<s>``) and nowhere else. The stock forward still computes that layer's query projection,
attention output, LayerNorms and feed-forward block at every position and throws all but one
away: about 10/12 of one layer's matmuls, 14 % of a 6-layer model's. Here the last layer takes
its keys and values from every position, as before, and computes the rest for the first
position only. The output the head reads, the loss and the gradients are the same.

``install`` sets this up where the model's last layer has a known encoder layout (BERT's:
``attention.self`` with ``query``/``key``/``value``, ``attention.output``,
``feed_forward_chunk``; DistilBERT's: ``attention`` with ``q_lin``..``out_lin``, ``ffn``).
The caller checks on a real batch that the logits are the stock ones and calls ``remove``
otherwise. Calls that ask for hidden states or attentions take the stock path.
"""

from __future__ import annotations

from typing import Any

_STOCK = "_hubtool_stock_forward"
SKIP_KWARGS = ("output_hidden_states", "output_attentions", "inputs_embeds")


class Layout:
    """Where a layer keeps its parts: BERT's (BERT, RoBERTa, ELECTRA, XLM-R, CamemBERT...)."""

    projections = ("query", "key", "value")

    def attention(self, layer: Any) -> Any:
        return getattr(getattr(layer, "attention", None), "self", None)

    def fits(self, layer: Any) -> bool:
        attention = self.attention(layer)
        needed = (*self.projections, "attention_head_size", "scaling", "config", "dropout")
        return (
            attention is not None
            and all(hasattr(attention, n) for n in needed)
            and getattr(layer, "is_decoder", None) is False
            and getattr(layer, "add_cross_attention", None) is False
            and hasattr(layer, "feed_forward_chunk")
            and hasattr(layer.attention, "output")
        )

    def finish(self, layer: Any, attended: Any, first: Any) -> Any:
        """The layer's output from the attention's [B, 1, H] and the layer's input there."""
        return layer.feed_forward_chunk(layer.attention.output(attended, first))


class DistilBertLayout(Layout):
    projections = ("q_lin", "k_lin", "v_lin")

    def attention(self, layer: Any) -> Any:
        return getattr(layer, "attention", None)

    def fits(self, layer: Any) -> bool:
        attention = self.attention(layer)
        needed = (
            *self.projections,
            "out_lin",
            "attention_head_size",
            "scaling",
            "config",
            "dropout",
        )
        parts = ("sa_layer_norm", "ffn", "output_layer_norm")
        return (
            attention is not None
            and all(hasattr(attention, n) for n in needed)
            and all(hasattr(layer, n) for n in parts)
            and getattr(attention, "is_causal", True) is False
        )

    def finish(self, layer: Any, attended: Any, first: Any) -> Any:
        attended = layer.sa_layer_norm(layer.attention.out_lin(attended) + first)
        return layer.output_layer_norm(layer.ffn(attended) + attended)


LAYOUTS = (Layout(), DistilBertLayout())


def last_layer(model: Any) -> tuple[Any, Layout] | None:
    """The last layer of the model's one stack of layers, with its layout, when it has a
    known one (an encoder's, not a decoder's)."""
    from torch import nn

    stacks = [
        stack
        for module in model.modules()
        if isinstance(stack := getattr(module, "layer", None), nn.ModuleList) and len(stack)
    ]
    if len(stacks) != 1:
        return None
    layout = next((lay for lay in LAYOUTS if lay.fits(stacks[0][-1])), None)
    return None if layout is None else (stacks[0][-1], layout)


def install(model: Any) -> Any:
    """Route ``model``'s plain calls through the first-position last layer; the layer, or None
    when the model has no such layer."""
    found = last_layer(model)
    if found is None:
        return None
    layer, layout = found
    stock_layer, stock_model = layer.forward, model.forward
    state = {"on": False}

    def layer_forward(hidden_states: Any, attention_mask: Any = None, *args: Any, **kw: Any) -> Any:
        if not state["on"] or not _plain_mask(attention_mask, hidden_states.shape[1]):
            return stock_layer(hidden_states, attention_mask, *args, **kw)
        return first_position(layer, layout, hidden_states, attention_mask, **kw)

    def model_forward(*args: Any, **kw: Any) -> Any:
        config = getattr(model, "config", None)
        asked = any(kw.get(k) is not None and kw.get(k) is not False for k in SKIP_KWARGS)
        if asked or getattr(config, "output_hidden_states", False) or state["on"]:
            return stock_model(*args, **kw)
        state["on"] = True
        try:
            return stock_model(*args, **kw)
        finally:
            state["on"] = False

    setattr(layer, _STOCK, stock_layer)
    setattr(model, _STOCK, stock_model)
    layer.forward, model.forward = layer_forward, model_forward
    return layer


def stock(model: Any) -> Any:
    """The model's forward before ``install``."""
    return getattr(model, _STOCK)


def remove(model: Any, layer: Any) -> None:
    """Put the stock forwards back."""
    for module in (layer, model):
        module.forward = getattr(module, _STOCK)
        delattr(module, _STOCK)


def _plain_mask(mask: Any, length: int) -> bool:
    """A mask this path can cut to the first query: none, or a [B, 1, T|1, T] tensor."""
    import torch

    if mask is None:
        return True
    return (
        isinstance(mask, torch.Tensor)
        and mask.dim() == 4
        and mask.shape[-1] == length
        and mask.shape[-2] in (1, length)
    )


def first_position(layer: Any, layout: Layout, hidden: Any, mask: Any, **kwargs: Any) -> Any:
    """The layer (self-attention, then feed-forward) with queries at position 0 only:
    [B, T, H] in, [B, 1, H] out."""
    import sys

    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert import modeling_bert

    attention = layout.attention(layer)
    # "eager" is the model's own attention function, in the module that defines the layer
    own = sys.modules.get(type(attention).__module__)
    eager = getattr(own, "eager_attention_forward", modeling_bert.eager_attention_forward)
    q, k, v = (getattr(attention, n) for n in layout.projections)
    batch, length, _ = hidden.shape
    first = hidden[:, :1]
    size = attention.attention_head_size

    def heads(x: Any, n: int) -> Any:
        return x.view(batch, n, -1, size).transpose(1, 2)

    query, key, value = heads(q(first), 1), heads(k(hidden), length), heads(v(hidden), length)
    if mask is not None:
        mask = mask[:, :, :1, :]
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager)
    for name in ("cache", "past_key_values", "encoder_attention_mask"):
        kwargs.pop(name, None)
    out, _ = interface(
        attention,
        query,
        key,
        value,
        mask,
        dropout=attention.dropout.p if attention.training else 0.0,
        scaling=attention.scaling,
        **kwargs,
    )
    return layout.finish(layer, out.reshape(batch, 1, -1), first)
