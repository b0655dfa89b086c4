"""One FSDP2 training run of the micro MLA model on CPU (gloo): ``torchrun --nproc_per_node N fsdp_worker.py OUT [lora]``.

Shards like ``conf/accelerate/fsdp.yaml`` (FSDP2, one shard unit per ``YoutuDecoderLayer`` plus the root), trains
a few AdamW steps on the same global batches whatever the number of processes, and saves the full (un-sharded)
state dict as a transformers checkpoint from rank 0. accelerate runs FSDP only on accelerators (on CPU it falls
back to plain multi-process DDP), so this drives ``torch.distributed.fsdp.fully_shard`` directly.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import MICRO_ARCH

STEPS, ROWS, LENGTH = 4, 4, 64


def main(out: Path, lora: bool) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from agentkit.models import build_model, load_tokenizer

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tokenizer = load_tokenizer()
    model = build_model(MICRO_ARCH, tokenizer, seed=0)
    if lora:
        from peft import LoraConfig, get_peft_model

        from agentkit.train.config import MLA_LORA_TARGETS

        model = get_peft_model(
            model, LoraConfig(r=4, lora_alpha=8, target_modules=MLA_LORA_TARGETS, task_type="CAUSAL_LM")
        )
    if world > 1:
        mesh = init_device_mesh("cpu", (world,))
        base = model.get_base_model() if lora else model
        for layer in base.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.1
    )
    batches = torch.randint(
        3, len(tokenizer), (STEPS, ROWS, LENGTH), generator=torch.Generator().manual_seed(1)
    )
    losses = []
    for batch in batches:
        rows = batch[rank::world]  # every process its share of the same global batch
        loss = model(input_ids=rows, labels=rows).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        total = loss.detach().clone()
        dist.all_reduce(total)
        losses.append(float(total) / world)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        if lora:
            merged = _merged(state, tokenizer)
        else:
            merged = build_model(MICRO_ARCH, tokenizer, seed=0)
            merged.load_state_dict(state)
        merged.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "losses.json").write_text(
            json.dumps(
                {
                    "world_size": world,
                    "losses": losses,
                    "sharded": [type(p).__name__ for p in model.parameters()][:1],
                }
            )
        )
    dist.barrier()
    dist.destroy_process_group()


def _merged(state: dict, tokenizer):
    """The LoRA model's full state dict merged into a plain model (what ``peft.merge=true`` saves)."""
    from peft import LoraConfig, get_peft_model

    from agentkit.models import build_model
    from agentkit.train.config import MLA_LORA_TARGETS

    model = get_peft_model(
        build_model(MICRO_ARCH, tokenizer, seed=0),
        LoraConfig(r=4, lora_alpha=8, target_modules=MLA_LORA_TARGETS, task_type="CAUSAL_LM"),
    )
    model.load_state_dict(state)
    return model.merge_and_unload()


if __name__ == "__main__":
    main(Path(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "lora")
