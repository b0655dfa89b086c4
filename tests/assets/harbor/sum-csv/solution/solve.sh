#!/bin/bash
python3 - <<'PY'
import csv
with open("/app/data/numbers.csv") as handle:
    total = sum(int(row["value"]) for row in csv.DictReader(handle))
with open("/app/answer.txt", "w") as handle:
    handle.write(f"{total}\n")
PY
