#!/bin/bash
# Harbor verifier: write 1 to /logs/verifier/reward.txt when /app/hello.txt is right, else 0.
mkdir -p /logs/verifier
if [ -f /app/hello.txt ] && [ "$(cat /app/hello.txt)" = "Hello, world!" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
