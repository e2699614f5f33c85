from transformers import AutoTokenizer

from training.algorithms.tokenizer import build_word_tokenizer, encode_prompts

WORDS = ["a", "red", "circle", "two", "blue", "squares", "Red"]


def test_ids_are_special_tokens_then_sorted_words():
    tok = build_word_tokenizer(WORDS, max_length=8)
    assert tok.convert_ids_to_tokens(list(range(9))) == [
        "<pad>",
        "<unk>",
        "<bos>",
        "<eos>",
        "a",
        "blue",
        "circle",
        "red",
        "squares",
    ]
    assert len(tok) == 10  # "two" is last
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)


def test_encoding_pads_truncates_and_maps_unknown_words():
    tok = build_word_tokenizer(WORDS, max_length=8)
    enc = encode_prompts(tok, ["a Red circle", "two green squares", "a " * 20])
    assert enc.input_ids.shape == (3, 8)
    assert enc.input_ids[0].tolist() == [2, 4, 7, 6, 3, 0, 0, 0]
    assert enc.input_ids[1].tolist() == [2, 9, 1, 8, 3, 0, 0, 0]
    assert enc.attention_mask[0].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert enc.input_ids[2, 0].item() == 2 and enc.input_ids[2].shape == (8,)
    assert tok.decode(enc.input_ids[0], skip_special_tokens=True) == "a red circle"


def test_save_and_load_with_auto_tokenizer(tmp_path):
    tok = build_word_tokenizer(WORDS, max_length=8)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    prompts = ["two blue squares", "a red circle", "unknown words here"]
    assert loaded.model_max_length == 8
    assert loaded.get_vocab() == tok.get_vocab()
    assert encode_prompts(loaded, prompts).input_ids.tolist() == encode_prompts(tok, prompts).input_ids.tolist()
