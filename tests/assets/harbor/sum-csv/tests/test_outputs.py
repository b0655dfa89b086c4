"""The answer file holds the sum of the value column."""

from pathlib import Path

answer = Path("/app/answer.txt")
assert answer.exists(), "/app/answer.txt is missing"
assert int(answer.read_text().strip()) == 17 + 25 - 4 + 1000, answer.read_text()
print("ok")
