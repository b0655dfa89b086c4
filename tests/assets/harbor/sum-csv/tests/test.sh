#!/bin/bash
# Harbor verifier: run the checks in /tests and write a JSON reward.
mkdir -p /logs/verifier
if python3 /tests/test_outputs.py; then
  echo '{"reward": 1.0}' > /logs/verifier/reward.json
else
  echo '{"reward": 0.0}' > /logs/verifier/reward.json
fi
