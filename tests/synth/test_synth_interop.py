import json
import math

import pytest
import toy_synth_env
from synth_runs import synth


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("interop") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        toy_synth_env.register(monkeypatch)
        synth(
            out,
            "env=toy-synth",
            "policy=reference",
            "strategy=teacher",
            "env.tasks.n=8",
            "n_samples=2",
            "output.rows_per_file=5",
        )
    return out


def test_output_loads_with_datasets_as_conversations(synth_dataset):
    import datasets

    ds = datasets.load_dataset("json", data_files=str(synth_dataset / "data" / "*.jsonl"), split="train")
    manifest = json.loads((synth_dataset / "manifest.json").read_text())
    assert len(ds) == manifest["counts"]["curated"] == sum(f["rows"] for f in manifest["files"])
    row = ds[0]
    assert {"messages", "tools", "task", "verdict", "provenance"} <= set(ds.column_names)
    calls = [c for m in row["messages"] if m.get("tool_calls") for c in m["tool_calls"]]
    assert calls and all(isinstance(c["function"]["arguments"], str) for c in calls)
    json.loads(calls[0]["function"]["arguments"])  # arguments stay JSON strings, never null-padded dicts
    assert row["tools"][0]["function"]["name"] == "python"


def test_compressed_output_loads_with_datasets(tmp_path):
    import datasets

    out = tmp_path / "zst"
    synth(
        out,
        "env=toy-synth",
        "policy=reference",
        "env.tasks.n=4",
        "output.compression=zstd",
    )
    ds = datasets.load_dataset("json", data_files=str(out / "data" / "*.jsonl.zst"), split="train")
    assert len(ds) == 4 and ds[0]["verdict"]["passed"]


@pytest.mark.slow
def test_trl_sft_trainer_trains_on_it_without_conversion(synth_dataset, tiny_model_dir, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    ds = datasets.load_dataset("json", data_files=str(synth_dataset / "data" / "*.jsonl"), split="train")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    rendered = tokenizer.apply_chat_template(ds[0]["messages"], tools=ds[0]["tools"], tokenize=False)
    first_call = next(c for m in ds[0]["messages"] if m.get("tool_calls") for c in m["tool_calls"])
    assert first_call["function"]["arguments"] in rendered and "null" not in rendered
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=3,
        per_device_train_batch_size=1,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=False,
        max_length=768,
        assistant_only_loss=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    result = trainer.train()
    assert trainer.state.global_step == 3 and math.isfinite(result.training_loss)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
