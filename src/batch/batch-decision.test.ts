import { describe, expect, it } from "vitest";
import { Pricing } from "../cost/pricing.ts";
import { decisionOf, fallbackOf } from "./batch-decision.ts";

const pricing = new Pricing();
const request = { path: "/chat/completions", body: { model: "gpt-4o-mini", messages: [] } };
const context = { provider: "openai" as const, pricing, remainingMs: 60_000, latencyMs: 1234 };
const body = {
  model: "gpt-4o-mini-2024-07-18",
  choices: [],
  usage: { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 },
};

describe("decisionOf", () => {
  it("an answer is written as the batch gave it, at the batch price", () => {
    const decision = decisionOf(
      request,
      { i: 0, batch: "batch_1", response: { status: 200, body, request_id: "req_1" } },
      context,
    );
    expect(decision.kind).toBe("batch");
    if (decision.kind !== "batch") return;
    expect(decision.costUsd).toBeCloseTo((0.15 + 0.6) / 2);
    expect(decision.realtimeCostUsd).toBeCloseTo(0.15 + 0.6);
    expect(decision.outcome).toMatchObject({
      ok: true,
      attempts: 1,
      latencyMs: 1234,
      value: { status: 200, requestId: "req_1", batchId: "batch_1" },
    });
  });

  it("a request the provider refused (400) keeps its error: real time would refuse it too", () => {
    const decision = decisionOf(
      request,
      {
        i: 0,
        batch: "batch_1",
        response: {
          status: 400,
          body: { error: { message: "bad", type: "invalid_request_error" } },
          request_id: null,
        },
      },
      context,
    );
    expect(decision).toMatchObject({
      kind: "final",
      notRun: false,
      outcome: { ok: false, error: { code: "SALVO_CLIENT_ERROR", status: 400 } },
    });
  });

  it("a server error, an expired or a cancelled line runs in real time within what the deadline leaves", () => {
    for (const result of [
      {
        i: 0,
        batch: "b",
        response: { status: 500, body: { error: { type: "server_error" } }, request_id: null },
      },
      { i: 0, batch: "b", not_run: "expired" as const },
      { i: 0, batch: "b", not_run: "cancelled" as const },
    ])
      expect(decisionOf(request, result, context)).toEqual({
        kind: "realtime",
        deadlineMs: 60_000,
        fallback: true,
      });
    expect(
      decisionOf(
        request,
        { i: 0, batch: "b", not_run: "missing" },
        { ...context, remainingMs: undefined },
      ),
    ).toEqual({ kind: "realtime", deadlineMs: undefined, fallback: true });
  });
});

describe("fallbackOf", () => {
  it("past the run deadline, a line the batch never ran is not run (a rerun runs it)", () => {
    const decision = fallbackOf(
      { i: 0, batch: "batch_9", not_run: "expired" },
      { provider: "openai", remainingMs: -5 },
      false,
    );
    expect(decision).toMatchObject({
      kind: "final",
      notRun: true,
      outcome: { ok: false, error: { code: "SALVO_BATCH_NOT_RUN" } },
    });
    if (decision.kind === "final" && !decision.outcome.ok)
      expect(decision.outcome.error.message).toMatch(
        /batch batch_9 expired before it ran this line/,
      );
  });

  it("a batch abandoned for the deadline runs its lines in real time whatever the deadline says", () => {
    expect(
      fallbackOf(
        { i: 0, batch: "b", not_run: "cancelled" },
        { provider: "openai", remainingMs: -5 },
        true,
      ),
    ).toEqual({ kind: "realtime", deadlineMs: undefined, fallback: true });
  });
});
