"""Teacher rewrites for tests/synth/assets/long_cot.jsonl, good and deliberately bad, keyed by row id."""

GOOD = {
    "cot-1": (
        "Analysis: 37*48-125; multiplication comes before subtraction.\n"
        "Plan: compute 37*48 as 37*50 - 37*2, then subtract 125.\n"
        "Action: 37*50 = 1850, 37*2 = 74, so 37*48 = 1776; 1776 - 125 = 1651.\n"
        "Reflection: 40*48 - 3*48 = 1920 - 144 = 1776 agrees, and 1651 + 125 = 1776.\n"
        "Summary: 37*48 = 1776, so the value is \\boxed{1651}."
    ),
    "cot-2": (
        "Analysis: the sum 1 + 2 + ... + 20.\n"
        "Plan: pair the first and last terms.\n"
        "Action: 10 pairs each summing to 21 give 10*21 = 210.\n"
        "Reflection: n(n+1)/2 with n = 20 gives 420/2 = 210.\n"
        "Summary: the sum is \\boxed{210}."
    ),
    "cot-3": (
        "Analysis: P = 2(l + w) with P = 30, l = 9; the area is l*w.\n"
        "Plan: solve for w, then multiply.\n"
        "Action: 9 + w = 15, so w = 6; area 9*6 = 54.\n"
        "Reflection: 2*(9+6) = 30 checks the width.\n"
        "Summary: the width is 6 and the area is \\boxed{54}."
    ),
    "cot-4": (
        "Analysis: two powers and a difference.\n"
        "Plan: compute 2^10 and 3^5, subtract.\n"
        "Action: 2^10 = 1024, 3^5 = 243, 1024 - 243 = 781.\n"
        "Reflection: 781 + 243 = 1024.\n"
        "Summary: \\boxed{781}."
    ),
}
BAD = {  # row id -> (rewrite, the checks that must reject it)
    "cot-5": (
        "Analysis: hours to minutes.\nPlan: multiply by 60.\nAction: 3.5*60 = 210.\n"
        "Reflection: 180 + 30 = 210.\nSummary: 3.5 hours are 12600 seconds, that is \\boxed{210} minutes.",
        ["summary"],
    ),
    "cot-6": (
        "Analysis: gcd of 84 and 120.\nPlan: factor both.\nAction: 84 = 2^2*3*7, 120 = 2^3*3*5, so the gcd "
        "is 2^2*3 = 12.\nReflection: 120 mod 84 = 36, 84 mod 36 = 12.\nSummary: \\boxed{24}.",
        ["answer", "summary"],
    ),
}
WRONG_ORDER = (
    "Plan: multiply.\nAnalysis: a product.\nAction: 37*48 = 1776; 1776 - 125 = 1651.\n"
    "Reflection: fine.\nSummary: \\boxed{1651}."
)
TOO_LONG = GOOD["cot-1"].replace("Reflection:", "Reflection: " + "I re-check every digit once more. " * 40)


def create_teacher_app(rows: dict[str, str], model: str = "teacher"):
    """A served teacher (OpenAI-compatible, FastAPI) that answers a rewrite request with the prepared
    rewrite of the row whose question it contains: ``rows`` maps question -> row id."""
    import time

    from fastapi import FastAPI, Request

    app = FastAPI()
    texts = {**GOOD, **{row: text for row, (text, _) in BAD.items()}}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model, "object": "model"}]}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        user = body["messages"][-1]["content"]
        row = next(row for question, row in rows.items() if f"Question:\n{question}\n" in user)
        message = {"role": "assistant", "content": texts[row]}
        return {
            "id": "c",
            "object": "chat.completion",
            "model": model,
            "created": int(time.time()),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": len(user) // 4,
                "completion_tokens": len(texts[row]) // 4,
                "total_tokens": (len(user) + len(texts[row])) // 4,
            },
        }

    return app
