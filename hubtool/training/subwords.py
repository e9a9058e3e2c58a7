"""A BERT-style sub-word tokenizer learnt from text, for models pretrained from scratch (the
demo's French masked-LM; the tiny models of the tests).

The same text always gives the same tokenizer. The ``tokenizers`` WordPiece trainer does not:
it numbers the ``##`` continuation pieces in the order of a hash map, and merges of equal
counts are then broken by those numbers, so two runs learn different vocabularies. A BPE
trainer without continuation prefix numbers only the alphabet (sorted), so it is
deterministic; word starts are marked with ``▁`` (Metaspace, as in SentencePiece) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, max_length: int, strip_accents: bool | None = None
) -> Any:
    """A fast tokenizer (lower-cased, [CLS] … [SEP] around each text) trained on ``texts``."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=strip_accents)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Metaspace()]
    )
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
