"""``agentkit serve engine=vllm``: the command it builds (vLLM needs a GPU, so it is not run here), the
Youtu -> DeepSeek-V3 export vLLM loads, and the serve config."""

from __future__ import annotations

import json

import pytest

from agentkit.chat_template import YOUTU_CHAT_TEMPLATE
from agentkit.cli import conf_dir, main
from agentkit.errors import ConfigError
from agentkit.server.vllm import VllmConfig, build_vllm_command, chat_template_file, export_for_vllm


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_command_has_the_tool_calling_flags():
    cfg = VllmConfig(tensor_parallel_size=2, gpu_memory_utilization=0.85, seed=3, attention_backend="TRITON_MLA",
                     extra_args=["--enforce-eager"])
    argv = build_vllm_command("/ckpt/youtu", served_model_name="youtu-2b", host="0.0.0.0", port=8001, cfg=cfg,
                              max_model_len=32768, chat_template_path="/t/youtu.jinja")
    assert argv[:3] == ["vllm", "serve", "/ckpt/youtu"]
    assert flag(argv, "--served-model-name") == "youtu-2b" and flag(argv, "--port") == "8001"
    assert flag(argv, "--host") == "0.0.0.0" and flag(argv, "--tensor-parallel-size") == "2"
    assert flag(argv, "--max-model-len") == "32768" and flag(argv, "--tool-call-parser") == "hermes"
    assert "--enable-auto-tool-choice" in argv and flag(argv, "--chat-template") == "/t/youtu.jinja"
    assert flag(argv, "--gpu-memory-utilization") == "0.85" and flag(argv, "--seed") == "3"
    assert flag(argv, "--attention-backend") == "TRITON_MLA" and argv[-1] == "--enforce-eager"
    assert "--data-parallel-size" not in argv


def test_optional_flags_are_left_out_and_bad_values_rejected():
    argv = build_vllm_command("/m", served_model_name="m", host="h", port=1,
                              cfg=VllmConfig(enable_auto_tool_choice=False))
    for absent in ("--enable-auto-tool-choice", "--tool-call-parser", "--max-model-len", "--chat-template"):
        assert absent not in argv
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        build_vllm_command("/m", served_model_name="m", host="h", port=1, cfg=VllmConfig(tensor_parallel_size=0))
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        build_vllm_command("/m", served_model_name="m", host="h", port=1,
                           cfg=VllmConfig(gpu_memory_utilization=1.5))


def test_chat_template_option(tmp_path):
    assert chat_template_file(None, tmp_path) is None
    path = chat_template_file("agentkit", tmp_path)
    assert path.read_text() == YOUTU_CHAT_TEMPLATE
    with pytest.raises(ConfigError, match="vllm.chat_template"):
        chat_template_file(str(tmp_path / "missing.jinja"), tmp_path)


def test_youtu_export_is_the_same_model_as_deepseek_v3(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = export_for_vllm(tiny_model_dir, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "deepseek_v3" and config["architectures"] == ["DeepseekV3ForCausalLM"]
    assert config["first_k_dense_replace"] == config["num_hidden_layers"] and not config["tie_word_embeddings"]
    assert (out / "tokenizer.json").exists() and (out / "tokenizer_config.json").exists()
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(exported).__name__ == "DeepseekV3ForCausalLM"
    ids = torch.randint(0, source.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(source(ids).logits, exported(ids).logits, atol=1e-5)
    stamp = (out / "agentkit-export.json").stat().st_mtime_ns
    assert export_for_vllm(tiny_model_dir, out) == out and (out / "agentkit-export.json").stat().st_mtime_ns == stamp


def test_cli_dry_run_prints_the_command(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    main(["serve", "engine=vllm", f"model={tiny_model_dir}", "port=9000", "max_model_len=2048",
          "vllm.dry_run=true", "vllm.chat_template=agentkit", "vllm.tensor_parallel_size=2"])
    line = [ln for ln in capsys.readouterr().out.splitlines() if " serve " in ln][-1]
    assert "--served-model-name " + tiny_model_dir.name in line and "--max-model-len 2048" in line
    assert "--tensor-parallel-size 2" in line and "--tool-call-parser hermes" in line
    assert str(tmp_path / "vllm") in line  # the DeepSeek-V3 export, not the Youtu checkpoint


def test_cli_reports_a_missing_vllm(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "engine=vllm", f"model={tiny_model_dir}", "vllm.executable=/nonexistent/vllm"])
    assert exit_info.value.code == 2 and "vllm.executable" in capsys.readouterr().err


def test_serve_config_rejects_unknown_keys_at_compose_time():
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from agentkit.config import to_object
    from agentkit.server.cli import ServeConfig, register

    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = to_object(compose("serve", overrides=["port=0", "model.name=x"]))
        assert isinstance(cfg, ServeConfig) and cfg.model.arch == {"preset": "tiny-mla"} and cfg.port == 0
        assert cfg.vllm.tool_call_parser == "hermes" and cfg.engine == "transformers"
        with pytest.raises(ConfigCompositionException):
            compose("serve", overrides=["max_batchsize=4"])
        with pytest.raises(ConfigCompositionException):
            compose("serve", overrides=["vllm.tensor_parallel=2"])
        with pytest.raises(ConfigCompositionException):
            compose("serve", overrides=["port=eighty"])
