"""A word-level tokenizer built locally as a real transformers tokenizer.

The shapes world has a closed vocabulary, so a word-level model is enough. It is a genuine
``PreTrainedTokenizerFast`` (``tokenizers`` WordLevel model, whitespace pre-tokenizer, BOS/EOS
post-processor) so it saves with ``save_pretrained`` and loads back with
``AutoTokenizer.from_pretrained(dir)``, exactly as a real pipeline's tokenizer does.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
DEFAULT_MAX_LENGTH = 16


def build_word_tokenizer(words: Iterable[str], *, max_length: int = DEFAULT_MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Build a lower-casing word-level tokenizer over ``words``.

    Ids 0..3 are ``<pad> <unk> <bos> <eos>``; the words follow in sorted order (duplicates and
    case dropped), so the same word list always gives the same ids. Each encoded prompt is
    ``<bos> w1 ... wn <eos>`` padded to ``max_length`` (the text encoder's context length).
    """
    vocab_words = sorted({w.strip().lower() for w in words if w and w.strip()} - set(SPECIAL_TOKENS))
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *vocab_words])}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
    )


def encode_prompts(tokenizer, prompts: list[str], *, max_length: int | None = None) -> dict:
    """Tokenize ``prompts`` to fixed-length id tensors (``input_ids``, ``attention_mask``).

    Works for any transformers tokenizer (ours or a real pipeline's CLIP tokenizer): pads to
    ``max_length`` (default: the tokenizer's ``model_max_length``) and truncates longer prompts.
    """
    length = max_length or tokenizer.model_max_length
    return tokenizer(
        list(prompts),
        padding="max_length",
        truncation=True,
        max_length=length,
        return_tensors="pt",
    )
