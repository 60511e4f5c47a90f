"""Seed 001's claim assessment, shaped as the team wrote it, pointed at the Salvo gateway.

One process of the run: a pool of claim threads, each claim with a nested pool of line-item
calls, plain urllib.request (the standard library only, no SDK, no pip). Nothing here limits
concurrency or retries: the gateway is the one admission authority for every process.
Each call carries its claim and item in `x-salvo-context`, for the gateway's audit log.

    python3 seed001_client.py BASE_URL PROCESS CLAIMS ITEMS OUT.jsonl

Writes one JSON line per item: its ids, the prompt, the HTTP status, the answer's text, and
when the call started and ended (epoch ms).
"""

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def call_item(base_url, claim_id, item_id, prompt):
    body = json.dumps(
        {
            "model": "sim-gpt",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": prompt}],
        }
    ).encode("utf-8")
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "authorization": "Bearer not-needed-without-tenants",
            "x-salvo-context": "claim_id=%s,item_id=%s,call_purpose=coverage" % (claim_id, item_id),
        },
    )
    started = time.time() * 1000
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status = response.status
            answer = json.loads(response.read().decode("utf-8"))
            text = answer["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as error:
        status = error.code
        text = error.read().decode("utf-8", "replace")
    return {
        "claim": claim_id,
        "item": item_id,
        "prompt": prompt,
        "status": status,
        "text": text,
        "start": started,
        "end": time.time() * 1000,
    }


def assess_claim(base_url, claim_id, items):
    # The nested pool of seed 001: one thread per line item of this claim.
    with ThreadPoolExecutor(max_workers=items) as pool:
        futures = [
            pool.submit(
                call_item,
                base_url,
                claim_id,
                "%s-I%d" % (claim_id, i),
                "%s-I%d: is line item %d of claim %s covered by the policy?" % (claim_id, i, i, claim_id),
            )
            for i in range(items)
        ]
        return [future.result() for future in futures]


def main():
    base_url, process, claims, items, out = sys.argv[1:6]
    claims, items = int(claims), int(items)
    claim_ids = ["P%s-C%d" % (process, c) for c in range(claims)]
    with ThreadPoolExecutor(max_workers=claims) as pool:
        results = [r for claim in pool.map(lambda cid: assess_claim(base_url, cid, items), claim_ids) for r in claim]
    with open(out, "w", encoding="utf-8") as f:
        for result in results:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
