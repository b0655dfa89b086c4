"""The STEM tokenizer: its pre-tokenization rules, and the tokenizer stage with its compression report."""

import json

import pytest
from transformers import AutoTokenizer

from agentkit.chat_template import ROLE_TOKENS, TAG_TOKENS, YOUTU_CHAT_TEMPLATE
from agentkit.cli import main
from agentkit.train.stages import TOKENIZER_REPORT
from agentkit.train.tokenizer import stem_pre_tokenizer


def _pieces(text):
    return [piece for piece, _ in stem_pre_tokenizer().pre_tokenize_str(text)]


def test_stem_pre_tokenization_rules():
    assert _pieces("x = 2024") == [
        "x",
        "Ġ=",
        "Ġ",
        "2",
        "0",
        "2",
        "4",
    ]  # digits one by one, never with a space
    assert _pieces('f(42) "42"')[2:4] == _pieces('f(42) "42"')[-3:-1] == ["4", "2"]  # same pieces anywhere
    assert _pieces("中文") == ["ä¸Ń", "æĸĩ"]  # CJK one by one (byte-level view)
    assert _pieces(" \\frac{1}{2}")[:2] == ["Ġ\\frac", "{"]  # a LaTeX command stays whole
    assert _pieces("    return x") == ["ĠĠĠ", "Ġreturn", "Ġx"]  # indentation runs


@pytest.mark.slow  # > 3 s on 2 busy cores (pytest --durations)
def test_tokenizer_stage_trains_saves_and_reports_compression(tmp_path, capsys):
    out = tmp_path / "tok"
    main(
        [
            "train",
            "stage=tokenizer",
            f"out={out}",
            "data.sources.main.n=6000",
            "tokenizer.vocab_size=2048",
            "tokenizer.eval_docs=200",
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == YOUTU_CHAT_TEMPLATE
    vocab = tokenizer.get_vocab()
    assert all(token in vocab for token in ROLE_TOKENS + TAG_TOKENS)
    assert tokenizer.bos_token == "<|begin_of_text|>" and tokenizer.pad_token == "<|pad|>"
    text = "What is 37 * 48? $\\frac{1}{2}$ <think>ok</think> 中文"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert [tokenizer.decode([i]) for i in tokenizer("12345", add_special_tokens=False)["input_ids"]] == list(
        "12345"
    )
    assert len(tokenizer.tokenize("<think>")) == 1

    # Superword tokens: merges across spaces (phrases) and a line break with its indentation.
    assert any("Ġ" in token.strip("Ġ") for token in vocab) and "ĊĠĠĠĠ" in vocab

    report = json.loads((out / TOKENIZER_REPORT).read_text())
    assert report["vocab_size"] <= 2048 and report["baseline_vocab_size"] == 2048
    assert set(report["compression"]) == {"stem", "general", "reasoning", "heldout"}
    for row in report["compression"].values():
        assert row["stem_bytes_per_token"] > 1.5 and row["baseline_bytes_per_token"] > 1.5
        assert abs(row["ratio"] - row["stem_bytes_per_token"] / row["baseline_bytes_per_token"]) < 1e-3
    # The targets: better than a plain byte-level BPE of the full budget on STEM, no worse on general text.
    assert report["compression"]["stem"]["ratio"] >= 1.05
    assert report["compression"]["general"]["ratio"] >= 1.0
    assert "bytes per token" in capsys.readouterr().out


def test_shipped_tiny_tokenizer_uses_the_current_rules(tiny_tokenizer):
    from tokenizers import Tokenizer, models

    from agentkit.models import TINY_TOKENIZER

    fresh = Tokenizer(models.BPE())
    fresh.pre_tokenizer = stem_pre_tokenizer()
    shipped = json.loads((TINY_TOKENIZER / "tokenizer.json").read_text())["pre_tokenizer"]
    assert shipped == json.loads(fresh.to_str())["pre_tokenizer"]
    assert tiny_tokenizer.chat_template == YOUTU_CHAT_TEMPLATE and len(tiny_tokenizer) < 4096
