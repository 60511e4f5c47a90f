// Every call record carries the context of the code that made the call, under concurrency,
// through the real scheduler and the OpenAI SDK against the simulator; nested contexts merge.
// And no file the run writes contains the API key; every file is 0600.
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withContext } from "../src/audit/audit-context.ts";
import { openCallLog } from "../src/audit/call-log.ts";
import { openDecisionLog } from "../src/audit/decision-log.ts";
import { verifyLog } from "../src/audit/verify-log.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import { Salvo } from "../src/salvo.ts";
import { type SimHandle, startSimulator } from "../src/sim/index.ts";

const FAKE_KEY = "sk-test-audit-fake-key-0123456789";
let sim: SimHandle;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-audit-context-"));
  sim = await startSimulator({
    seed: 7,
    latency: { ttftMs: 2, msPerToken: 0, jitter: 0.5 },
    capacity: { slots: 16 },
    faults: { p500: 0.15 },
    output: { tokens: 4 },
  });
});
afterEach(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

type Line = {
  type: string;
  context?: Record<string, unknown>;
  attributes?: Record<string, unknown>;
  request?: { body?: { messages: Array<{ content: string }> } };
  status?: string;
  attempt?: number;
};

describe("audit context through the scheduler", () => {
  it("40 claims x 5 line items in parallel, with retries: each record carries its own caller's context", async () => {
    const path = join(dir, "calls.jsonl");
    const log = await openCallLog(path, { content: "full", env: { OPENAI_API_KEY: FAKE_KEY } });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      concurrency: 8,
      audit: log,
    });
    const decisions = await openDecisionLog(join(dir, "decisions.jsonl"), { env: {} });
    const claims = Array.from({ length: 40 }, (_, i) => `CLM-${i}`);
    await Promise.all(
      claims.map((claim) =>
        withContext({ claim_id: claim, step: "coverage" }, async () => {
          // Per-item calls, each nested in its own document context...
          const perItem = Array.from({ length: 3 }, (_, item) =>
            withContext({ doc_id: `${claim}/doc-${item}` }, () =>
              salvo.settle({
                path: "/chat/completions",
                body: {
                  model: "gpt-4o-mini",
                  max_tokens: 4,
                  messages: [{ role: "user", content: `${claim} doc-${item}` }],
                },
              }),
            ),
          );
          // ...and a map whose items all carry the claim's context (captured at submission).
          const mapped = salvo.map(
            [0, 1].map((k) => ({
              path: "/chat/completions",
              body: {
                model: "gpt-4o-mini",
                max_tokens: 4,
                messages: [{ role: "user", content: `${claim} map-${k}` }],
              },
            })),
          );
          const outcomes = [...(await Promise.all(perItem)), ...(await mapped)];
          const refs = outcomes.map((o) => (o.ok ? log.refOf(o.value) : undefined));
          await decisions.append({ claim, approved: outcomes.every((o) => o.ok) }, { calls: refs });
        }),
      ),
    );
    await log.close();
    await decisions.close();
    const records = (await readFile(path, "utf8"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Line)
      .filter((r) => r.type === "llm_call");
    expect(records.length).toBeGreaterThanOrEqual(claims.length * 5);
    expect(records.some((r) => (r.attempt ?? 1) > 1)).toBe(true); // retries happened
    for (const record of records) {
      const content = record.request!.body!.messages[0]!.content;
      const [claim, what] = content.split(" ") as [string, string];
      expect(record.context?.claim_id).toBe(claim);
      expect(record.context?.step).toBe("coverage"); // the outer context, merged
      if (what.startsWith("doc-")) expect(record.context?.doc_id).toBe(`${claim}/${what}`);
      else expect(record.context?.doc_id).toBeUndefined();
      expect(record.attributes?.["gen_ai.provider.name"]).toBe("openai");
      expect(record.attributes?.["gen_ai.request.model"]).toBe("gpt-4o-mini");
      if (record.status === "ok")
        expect(record.attributes?.["gen_ai.usage.output_tokens"]).toBeGreaterThan(0);
      else expect(record.attributes?.["error.type"]).toBe("SALVO_SERVER_ERROR");
    }
    // Decisions carry their claim's context and reference its calls; both logs verify.
    const decisionLines = (await readFile(join(dir, "decisions.jsonl"), "utf8")).trim().split("\n");
    const decided = decisionLines.map((l) => JSON.parse(l)).filter((r) => r.type === "decision");
    expect(decided).toHaveLength(claims.length);
    for (const d of decided) expect(d.context.claim_id).toBe(d.decision.claim);
    expect((await verifyLog(path, { checkpointsFile: `${path}.checkpoints` })).status).toBe(
      "intact",
    );
    expect((await verifyLog(join(dir, "decisions.jsonl"))).status).toBe("intact");

    // The API key is in no file the run wrote; every file is 0600.
    const files = await readdir(dir);
    expect(files.sort()).toEqual([
      "calls.jsonl",
      "calls.jsonl.checkpoints",
      "decisions.jsonl",
      "decisions.jsonl.checkpoints",
    ]);
    for (const file of files) {
      const bytes = await readFile(join(dir, file), "utf8");
      expect(bytes).not.toContain(FAKE_KEY);
      expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
    }
  });

  it("a key that reaches a record (an error message, a body) is redacted before it is written", async () => {
    const path = join(dir, "calls.jsonl");
    const log = await openCallLog(path, { content: "full", env: { OPENAI_API_KEY: FAKE_KEY } });
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
      audit: log,
    });
    await salvo.settle({
      path: "/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: 4,
        messages: [{ role: "user", content: `my key is ${FAKE_KEY}` }],
      },
    });
    await log.close();
    const text = await readFile(path, "utf8");
    expect(text).not.toContain(FAKE_KEY);
    expect(text).toContain("my key is [REDACTED]");
    expect((await verifyLog(path)).status).toBe("intact");
  });
});
