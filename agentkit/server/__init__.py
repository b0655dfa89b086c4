"""The embedded OpenAI-compatible server (FastAPI over a batched transformers engine) and its launchers.

Nothing heavy is imported here: ``engine`` and ``app`` import torch/transformers/fastapi lazily.
"""
