"""Training: STEM tokenizer, MLA model construction, data rendering and TRL stages."""
