// Claims assessed in parallel with a complete, verifiable audit trail (the flow of seed 001).
//
// ## Audit logs (README section)
// - `withContext({claim_id}, fn)`: every call made inside `fn`, however concurrent, is recorded
//   with that context (AsyncLocalStorage, captured when the call is submitted).
// - `openCallLog(path, {content: "hash" | "full" | "none"})` + `new Salvo({..., audit: callLog})`:
//   one hash-chained record per attempt, OpenTelemetry GenAI attribute names, no secrets, 0600.
// - `openDecisionLog(path)`: `append(decision, {calls: [callLog.refOf(result)]})` chains each
//   decision with the call records it relied on.
// - Checkpoints (every 1000 records and at close; HMAC-signed with SALVO_AUDIT_HMAC_KEY) go
//   inline and to `<log>.checkpoints`; ship that file elsewhere.
// - `salvo verify <log> --checkpoints <log>.checkpoints`: exit 0 intact, 1 tampered, 2 torn tail.
//
// Run: node examples/claims-audit.ts
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  OpenAIProvider,
  openCallLog,
  openDecisionLog,
  type ProviderRequest,
  Salvo,
  verifyLog,
  withContext,
} from "salvo";
import { startSimulator } from "salvo/sim";

const dir = await mkdtemp(join(tmpdir(), "claims-audit-"));
const callsPath = join(dir, "llm-calls.jsonl");
const decisionsPath = join(dir, "decisions.jsonl");
process.env.SALVO_AUDIT_HMAC_KEY ??= "example-key-keep-it-off-the-log-host";

// A simulated provider with some server errors, so retries show up in the call log.
const sim = await startSimulator({
  seed: 1,
  latency: { ttftMs: 30, msPerToken: 1 },
  capacity: { slots: 8 },
  faults: { p500: 0.1 },
});
const callLog = await openCallLog(callsPath, { content: "hash" });
const decisions = await openDecisionLog(decisionsPath);
const salvo = new Salvo({
  provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-example-not-a-key" }),
  concurrency: 8,
  audit: callLog,
});

const claims = Array.from({ length: 10 }, (_, i) => ({
  id: `CLM-${1000 + i}`,
  items: Array.from({ length: 3 + (i % 4) }, (_, k) => `line item ${k}: part ${i}-${k}`),
}));
const ask = (content: string, maxTokens: number): ProviderRequest => ({
  path: "/chat/completions",
  body: { model: "gpt-4o", max_tokens: maxTokens, messages: [{ role: "user", content }] },
});

// Every claim in parallel; inside each, its line items in parallel, then one assessment call.
// One scheduler governs them all, and each record carries its claim's (and item's) context.
await Promise.all(
  claims.map((claim) =>
    withContext({ claim_id: claim.id, stage: "assessment" }, async () => {
      const coverage = await Promise.all(
        claim.items.map((item, k) =>
          withContext({ line_item: k }, () => salvo.settle(ask(`coverage? ${item}`, 16))),
        ),
      );
      const assessment = await salvo.settle(ask(`assess claim ${claim.id}`, 64));
      const outcomes = [...coverage, assessment];
      const ok = outcomes.every((o) => o.ok);
      await decisions.append(
        {
          claim_id: claim.id,
          decision: ok ? "APPROVE" : "REVIEW_NEEDED",
          payout: ok ? "1250.00" : "0",
        },
        {
          actor: "claims-audit-example",
          calls: outcomes.map((o) => (o.ok ? callLog.refOf(o.value) : undefined)),
        },
      );
    }),
  ),
);
await salvo.close();
await callLog.close();
await decisions.close();
await sim.close();

for (const path of [callsPath, decisionsPath]) {
  const report = await verifyLog(path, {
    checkpointsFile: `${path}.checkpoints`,
    hmacKey: process.env.SALVO_AUDIT_HMAC_KEY,
  });
  process.stdout.write(
    `${path}: ${report.status.toUpperCase()}, ${report.records} records in ${report.segments} segment(s), ${report.checkpoints.inline + report.checkpoints.external} checkpoints\n`,
  );
}
process.stdout.write(`files in ${dir}\n`);
