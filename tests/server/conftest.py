"""Server-test fixtures: a scripted causal LM that runs through the real engine, app and HTTP stack.

The tiny random model produces junk text; to test what the server does with tool calls, stop strings
and EOS, ``ScriptedLM`` is an HF ``GenerationMixin`` model whose next token is fixed by a script
(keyed on how many tokens follow the last ``<|Assistant|>`` marker), so ``generate`` emits exactly
the scripted text. Everything above the model (batching, sampling, HTTP, parsing) is the real code.
"""

from __future__ import annotations

import pytest
from asgi_server import serve_in_thread


def _scripted_lm_class():
    import torch
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import CausalLMOutputWithPast

    class ScriptedConfig(PretrainedConfig):
        model_type = "agentkit-scripted"

        def __init__(self, vocab_size: int = 8, max_position_embeddings: int = 512, **kwargs):
            self.vocab_size = vocab_size
            self.max_position_embeddings = max_position_embeddings
            super().__init__(**kwargs)

    class ScriptedLM(PreTrainedModel, GenerationMixin):
        config_class = ScriptedConfig
        main_input_name = "input_ids"

        def __init__(self, config, script: list[int], anchor: int, eos: int):
            super().__init__(config)
            self.dummy = torch.nn.Parameter(torch.zeros(1))
            self.script, self.anchor, self.eos = script, anchor, eos
            self.generation_config.use_cache = False
            self.forward_calls = 0

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            self.forward_calls += 1
            rows, width = input_ids.shape
            logits = torch.full((rows, width, self.config.vocab_size), -20.0)
            for b in range(rows):
                anchors = (input_ids[b] == self.anchor).nonzero()
                done = width - 1 - int(anchors[-1]) if len(anchors) else 0
                token = self.script[done] if done < len(self.script) else self.eos
                logits[b, -1, token] = 20.0
            return CausalLMOutputWithPast(logits=logits)

        def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
            return {"input_ids": input_ids, "attention_mask": attention_mask}

    return ScriptedConfig, ScriptedLM


@pytest.fixture(scope="session")
def scripted_engine_factory(tiny_tokenizer):
    """``make(text, eos=True, **engine_kwargs)`` -> a GenerationEngine whose model writes ``text``."""
    from agentkit.chat_template import ASSISTANT
    from agentkit.server.engine import GenerationEngine

    config_cls, model_cls = _scripted_lm_class()
    engines = []

    def make(text: str, *, eos: bool = True, max_model_len: int = 512, **kwargs):
        tok = tiny_tokenizer
        script = tok(text, add_special_tokens=False)["input_ids"]
        filler = tok(" x", add_special_tokens=False)["input_ids"][-1]
        script = script + ([] if eos else [filler] * 256)
        config = config_cls(
            vocab_size=len(tok),
            max_position_embeddings=max_model_len,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        model = model_cls(config, script, tok.convert_tokens_to_ids(ASSISTANT), tok.eos_token_id)
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        engine = GenerationEngine(model.eval(), tok, name="scripted", **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def serve_app():
    return serve_in_thread


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir, tmp_path_factory):
    """``agentkit serve`` on the tiny MLA checkpoint, a real subprocess (one per test module); its ``/v1`` URL."""
    from agentkit.config import ModelConfig
    from agentkit.server.launch import embedded_server

    log = tmp_path_factory.mktemp("serve") / "server.log"
    with embedded_server(
        ModelConfig(name="tiny-mla", path=str(tiny_model_dir)), log_path=log, timeout=240, extra=["threads=1"]
    ) as url:
        yield url
