"""BFCL (Berkeley Function-Calling Leaderboard) tasks, read straight from the ``bfcl-eval`` wheel.

The wheel is never installed (it pins numpy 1.26 and pulls faiss, sentence-transformers and vendor
SDKs): ``pip download --no-deps bfcl-eval==2026.3.23`` fetches it into a cache directory and the JSON
lines are read from the zip. Categories: ``simple`` (BFCL's ``simple_python``), ``multiple``,
``parallel``, ``parallel_multiple`` and their ``live_`` variants.

``check_calls`` re-implements BFCL's AST checker for Python (``ast_checker.py``): the same possible-
answer semantics (``""`` marks an optional parameter that may be left out; strings compare after
BFCL's standardization; int is accepted for float; parallel calls match in any order).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit import paths
from agentkit.errors import ConfigError, DataError
from agentkit.records import Task, ToolSpec

BFCL_VERSION = "2026.3.23"
WHEEL_NAME = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"
DATA_PREFIX = "bfcl_eval/data"

CATEGORIES: dict[str, str] = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "live_simple": "live_simple",
    "live_multiple": "live_multiple",
    "live_parallel": "live_parallel",
    "live_parallel_multiple": "live_parallel_multiple",
}
DEFAULT_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")

# BFCL's own mapping of its type names to JSON Schema (constants/type_mappings.py, GORILLA_TO_OPENAPI).
JSON_TYPES = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
}
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
NESTED_TYPES = ("array", "tuple")


# ------------------------------------------------------------------------------------------ the wheel


def cache_dir() -> Path:
    return paths.cache_dir("bfcl")


def download_wheel(dest: Path, timeout: float = 300.0) -> Path:
    """``pip download --no-deps bfcl-eval==VERSION -d dest``; raises ``DataError`` when it fails."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        f"bfcl-eval=={BFCL_VERSION}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"could not download bfcl-eval {BFCL_VERSION} with pip: {exc}", str(dest)) from None
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataError(
            f"could not download bfcl-eval {BFCL_VERSION} with pip: {' | '.join(tail)}", str(dest)
        )
    return wheel


def find_wheel(path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The bfcl-eval wheel: ``path`` (a wheel, or a directory holding it), else the cache (downloading
    it there on first use when ``download``)."""
    if path is not None:
        candidate = Path(path)
        if candidate.is_dir():
            candidate = candidate / WHEEL_NAME
        if not candidate.is_file():
            raise DataError(f"no bfcl-eval wheel here (expected {WHEEL_NAME})", str(path))
        return candidate
    wheel = cache_dir() / WHEEL_NAME
    if wheel.is_file():
        return wheel
    if not download:
        raise DataError(
            f"bfcl-eval wheel not cached; run: pip download --no-deps bfcl-eval=={BFCL_VERSION} "
            f"-d {cache_dir()}",
            str(wheel),
        )
    return download_wheel(cache_dir())


class BfclWheel:
    """Read-only access to the data files inside the wheel."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"not a readable wheel: {exc}", str(self.path)) from None

    def names(self) -> list[str]:
        return self._zip.namelist()

    def rows(self, member: str) -> list[tuple[int, dict[str, Any]]]:
        where = f"{self.path}!{member}"
        try:
            text = self._zip.read(member).decode("utf-8")
        except KeyError:
            raise DataError("no such file in the wheel", where) from None
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON: {exc.msg}", where, number) from None
        return rows

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> BfclWheel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------- schemas


def to_json_schema(node: Any) -> Any:
    """A BFCL parameter description as JSON Schema (``dict`` -> object, ``float`` -> number, ...)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            out[key] = JSON_TYPES.get(value, "string")
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: to_json_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key == "optional":
            continue  # BFCL metadata, not JSON Schema
        else:
            out[key] = copy.deepcopy(value)
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    return out


def tool_spec(function: dict[str, Any]) -> ToolSpec:
    parameters = to_json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    parameters["type"] = "object"
    parameters.setdefault("properties", {})
    return ToolSpec.model_validate(
        {
            "type": "function",
            "function": {
                "name": function["name"],
                "description": function.get("description", ""),
                "parameters": parameters,
            },
        }
    )


# -------------------------------------------------------------------------------------------- checker


def _possible_type(possible: list[Any]) -> type | None:
    for answer in possible:
        if answer != "":
            return type(answer)
    return None


def _type_check(
    param: str, value: Any, possible: list[Any], type_name: str, expected: type, nested: type | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "valid": True,
        "error": [],
        "is_variable": False,
        "error_type": "type_error:simple",
    }
    possible_type = _possible_type(possible)
    is_variable = possible_type is not None and possible_type != expected
    if type(value) == expected:  # noqa: E721 - BFCL compares exact types (bool is not int)
        if nested is None:
            result["is_variable"] = is_variable
            return result
        for item in possible:
            ok = True
            if type(item) == list:  # noqa: E721
                for element in value:
                    if not _type_check(param, element, item, str(nested), nested, None)["valid"]:
                        ok = False
                        break
            if ok:
                return {"valid": True, "error": [], "is_variable": is_variable}
        result["valid"] = False
        result["error"] = [
            f"Nested type checking failed for parameter {param!r}. Expected outer type "
            f"{type_name} with inner type {nested}. Parameter value: {value!r}."
        ]
        result["error_type"] = "type_error:nested"
    if possible_type is not None and type(value) == possible_type:  # noqa: E721
        result["is_variable"] = True
        return result
    result["valid"] = False
    result["error"].append(
        f"Incorrect type for parameter {param!r}. Expected type {type_name}, got "
        f"{type(value).__name__}. Parameter value: {value!r}."
    )
    result["error_type"] = "type_error:simple"
    return result


def standardize(text: str) -> str:
    """BFCL's string normalization: drop spaces and ``,./-_*^``, lowercase, single to double quotes."""
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _std_list(values: list[Any]) -> list[Any]:
    return [standardize(v) if type(v) == str else v for v in values]  # noqa: E721


def _string_check(param: str, value: str, possible: list[Any]) -> dict[str, Any]:
    if standardize(value) not in [standardize(p) for p in possible if type(p) == str]:  # noqa: E721
        return {
            "valid": False,
            "error": [
                f"Invalid value for parameter {param!r}: {value!r}. Expected one of "
                f"{possible}. Case insensitive."
            ],
            "error_type": "value_error:string",
        }
    return {"valid": True, "error": []}


def _list_check(param: str, value: list[Any], possible: list[Any]) -> dict[str, Any]:
    if _std_list(list(value)) not in [_std_list(p) for p in possible]:
        return {
            "valid": False,
            "error": [f"Invalid value for parameter {param!r}: {value!r}. Expected one of {possible}."],
            "error_type": "value_error:list/tuple",
        }
    return {"valid": True, "error": []}


def _dict_check(param: str, value: dict[str, Any], possible: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
    for answer in possible:
        if answer == "":
            continue
        result = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
        ok = True
        for key, item in value.items():
            if key not in answer:
                result["error"].append(f"Unexpected dict key parameter: '{key}'.")
                result["error_type"] = "value_error:dict_key"
                ok = False
                break
            standard = standardize(item) if type(item) == str else item  # noqa: E721
            options = _std_list(list(answer[key]))
            if standard not in options:
                result["error"].append(
                    f"Invalid value for parameter {key!r}: {item!r}. Expected one of {options}."
                )
                result["error_type"] = "value_error:dict_value"
                ok = False
                break
        for key, options in answer.items():
            if key not in value and "" not in options:
                result["error"].append(f"Missing dict key parameter: '{key}'.")
                result["error_type"] = "value_error:dict_key"
                ok = False
                break
        if ok:
            return {"valid": True, "error": []}
    return result


def _list_dict_check(param: str, value: list[Any], possible: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"valid": False, "error": [], "error_type": "list_dict_checker:unclear"}
    for answer in possible:
        if len(value) != len(answer):
            result = {
                "valid": False,
                "error": ["Wrong number of dictionaries in the list."],
                "error_type": "value_error:list_dict_count",
            }
            continue
        ok = True
        for index, item in enumerate(value):
            result = _dict_check(param, item, [answer[index]])
            if not result["valid"]:
                ok = False
                break
        if ok:
            return {"valid": True, "error": []}
    return result


def check_one(function: dict[str, Any], call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """BFCL's ``simple_function_checker`` for Python: one ``{name: {param: value}}`` call against one
    ``{name: {param: [possible values]}}`` answer."""
    possible = list(answer.values())[0]
    name = function["name"]
    details = function["parameters"]["properties"]
    required = function["parameters"].get("required", [])
    result: dict[str, Any] = {"valid": True, "error": [], "error_type": "simple_function_checker:unclear"}
    if name not in call:
        return {
            "valid": False,
            "error": [f"Function name {name!r} not found in model output."],
            "error_type": "simple_function_checker:wrong_func_name",
        }
    arguments = call[name]
    for param in required:
        if param not in arguments:
            return {
                "valid": False,
                "error": [f"Missing required parameter: {param!r}."],
                "error_type": "simple_function_checker:missing_required",
            }
    value: Any  # the model's JSON; _type_check below says whether it has the parameter's type
    for param, value in arguments.items():
        if param not in details or param not in possible:
            return {
                "valid": False,
                "error": [f"Unexpected parameter: {param!r}."],
                "error_type": "simple_function_checker:unexpected_param",
            }
        type_name = details[param]["type"]
        if type_name not in PYTHON_TYPES:
            raise DataError(
                f"function {name}: parameter {param!r} has type {type_name!r}, "
                "which BFCL's Python checker does not know"
            )
        expected = PYTHON_TYPES[type_name]
        nested = PYTHON_TYPES[details[param]["items"]["type"]] if type_name in NESTED_TYPES else None
        if type_name == "tuple" and type(value) == tuple:  # noqa: E721
            value = list(value)
        if type_name == "float" and type(value) == int:  # noqa: E721
            value = float(value)
        typed = _type_check(param, value, possible[param], type_name, expected, nested)
        if not typed["valid"]:
            return typed
        if not typed["is_variable"]:
            if expected is dict:
                checked = _dict_check(param, value, possible[param])
            elif expected is list and nested is dict:
                checked = _list_dict_check(param, value, possible[param])
            elif expected is str:
                checked = _string_check(param, value, possible[param])
            elif expected is list:
                checked = _list_check(param, value, possible[param])
            else:
                checked = None
            if checked is not None:
                if not checked["valid"]:
                    return checked
                continue
        if value not in possible[param]:
            return {
                "valid": False,
                "error": [
                    f"Invalid value for parameter {param!r}: {value!r}. Expected one of {possible[param]}."
                ],
                "error_type": "value_error:others",
            }
    for param in possible:
        if param not in arguments and "" not in possible[param]:
            return {
                "valid": False,
                "error": [f"Optional parameter {param!r} not provided and not marked as optional."],
                "error_type": "simple_function_checker:missing_optional",
            }
    return result


def _describe(functions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def check_calls(
    functions: list[dict[str, Any]],
    calls: Sequence[dict[str, Any]],
    possible: list[dict[str, Any]],
    category: str,
) -> dict[str, Any]:
    """BFCL's ``ast_checker`` for Python: ``calls`` are ``[{name: {param: value}}, ...]`` in the model's order."""
    calls = list(calls)
    if "parallel" in category:
        if len(calls) != len(possible):
            return {
                "valid": False,
                "error": ["Wrong number of functions."],
                "error_type": "parallel_function_checker_no_order:wrong_count",
            }
        matched: list[int] = []
        for i, answer in enumerate(possible):
            function = _describe(functions, list(answer)[0])
            result: dict[str, Any] = {"valid": False}
            for index, call in enumerate(calls):
                if index in matched:
                    continue
                result = check_one(function, call, answer) if function else {"valid": False}
                if result["valid"]:
                    matched.append(index)
                    break
            if not result["valid"]:
                return {
                    "valid": False,
                    "error": [f"Could not find a matching function for index {i} of possible answers."],
                    "error_type": "parallel_function_checker_no_order:cannot_find_match",
                }
        return {"valid": True, "error": []}
    if "multiple" in category:
        if len(calls) != len(possible):
            return {
                "valid": False,
                "error": ["Wrong number of functions."],
                "error_type": "multiple_function_checker:wrong_count",
            }
        function = _describe(functions, list(possible[0])[0])
        if function is None:
            raise DataError(f"possible answer names {list(possible[0])[0]!r}, which no function describes")
        return check_one(function, calls[0], possible[0])
    if len(calls) != 1:
        return {
            "valid": False,
            "error": ["Wrong number of functions."],
            "error_type": "simple_function_checker:wrong_count",
        }
    return check_one(functions[0], calls[0], possible[0])


# --------------------------------------------------------------------------------------------- loader


def _category_of(name: str) -> str:
    if name not in CATEGORIES:
        raise ConfigError(
            f"tasks.options.categories: unknown BFCL category '{name}'; known: "
            f"{', '.join(CATEGORIES)}, multi_turn_base, multi_turn_long_context"
        )
    return CATEGORIES[name]


def load_bfcl_tasks(
    wheel: BfclWheel, categories: Sequence[str] = DEFAULT_CATEGORIES, env_name: str = "tooluse"
) -> list[Task]:
    """BFCL tasks of ``categories``, each with its functions (and their JSON schemas) and possible answers."""
    tasks: list[Task] = []
    for name in categories:
        stem = _category_of(name)
        member = f"{DATA_PREFIX}/BFCL_v4_{stem}.json"
        answers = {
            row["id"]: row["ground_truth"]
            for _, row in wheel.rows(f"{DATA_PREFIX}/possible_answer/BFCL_v4_{stem}.json")
        }
        for line, row in wheel.rows(member):
            where = f"{wheel.path}!{member}"
            try:
                turns = row["question"]
                functions = row["function"]
                task_id = row["id"]
            except (KeyError, TypeError) as exc:
                raise DataError(f"BFCL row without {exc}", where, line) from None
            if task_id not in answers:
                raise DataError(f"no possible answer for {task_id}", where, line)
            if len(turns) != 1:
                raise DataError(
                    f"{task_id} has {len(turns)} turns; single-turn categories have one", where, line
                )
            messages = turns[0]
            users = [m["content"] for m in messages if m["role"] == "user"]
            try:
                [tool_spec(f) for f in functions]
            except Exception as exc:
                raise DataError(
                    f"{task_id}: function schema cannot be converted: {exc}", where, line
                ) from None
            tasks.append(
                Task(
                    id=task_id,
                    env=env_name,
                    prompt=users[-1] if users else "",
                    meta={
                        "check": "calls",
                        "source": "bfcl",
                        "category": stem,
                        "messages": messages,
                        "functions": functions,
                        "possible_answer": answers[task_id],
                    },
                )
            )
    return tasks


def _reference_value(value: Any, schema: dict[str, Any]) -> Any:
    """A dict possible answer maps each key to its allowed values: pick the first of each."""
    kind = schema.get("type")
    if kind == "dict" and isinstance(value, dict):
        return {k: opts[0] for k, opts in value.items() if opts and opts[0] != ""}
    if kind in NESTED_TYPES and schema.get("items", {}).get("type") == "dict" and isinstance(value, list):
        return [_reference_value(v, schema["items"]) for v in value]
    return value


def reference_calls(
    functions: list[dict[str, Any]], possible: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """A call list for a possible answer: each parameter's first allowed value; parameters that may be
    left out (``""`` among their values) are, unless the function requires them. A few BFCL rows allow
    no passing call at all; ``check_calls`` tells."""
    calls = []
    for answer in possible:
        name, params = next(iter(answer.items()))
        function = _describe(functions, name) or {"parameters": {"properties": {}}}
        properties = function["parameters"].get("properties", {})
        required = set(function["parameters"].get("required", []))
        arguments = {}
        for param, values in params.items():
            chosen = [v for v in values if v != ""]
            if chosen and (param in required or "" not in values):
                arguments[param] = _reference_value(chosen[0], properties.get(param, {}))
        calls.append((name, arguments))
    return calls
