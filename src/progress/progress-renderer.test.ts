import { describe, expect, it } from "vitest";
import { Emitter } from "../core/emitter.ts";
import type { SchedulerEvents } from "../core/events.ts";
import { RunMetrics } from "../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "./format.ts";
import { createProgress } from "./progress-renderer.ts";

function memory(isTTY: boolean) {
  const out = { text: "", isTTY, write: (t: string) => (out.text += t) };
  return out;
}
const counts = (at: number) => ({ at, inFlight: 2, queued: 5, limit: 8 });

describe("progress", () => {
  it("auto is a bar on a terminal and plain lines elsewhere; none shows nothing", () => {
    expect(createProgress("auto", memory(true))?.constructor.name).toBe("BarProgress");
    expect(createProgress("auto", memory(false))?.constructor.name).toBe("PlainProgress");
    expect(createProgress("none", memory(true))).toBeUndefined();
  });

  it("plain prints a status line with done/total, failures, in flight/limit, 429s and retries", () => {
    const events = new Emitter<SchedulerEvents>(() => {});
    const metrics = new RunMetrics({ startedAt: 0, total: 10 });
    metrics.attach(events);
    const out = memory(false);
    const progress = createProgress("plain", out, { plainIntervalMs: 60_000 });
    progress?.start(metrics, events, () => 2000);
    events.emit("started", {
      ...counts(0),
      id: 1,
      index: 0,
      scope: undefined,
      attempt: 1,
      waitedMs: 0,
    });
    events.emit("succeeded", {
      ...counts(100),
      id: 1,
      index: 0,
      scope: undefined,
      attempts: 1,
      latencyMs: 100,
      value: {},
    });
    events.emit("failed", {
      ...counts(200),
      id: 2,
      index: 1,
      scope: undefined,
      attempts: 3,
      latencyMs: 100,
      error: new Error("x"),
      reason: "attempts-exhausted",
    });
    progress?.stop();
    expect(out.text).toContain("2/10 done | 1 failed | in flight 2/8");
    expect(out.text).toContain("429s 0 | retries 0 | elapsed 2.0s");
  });

  it("json streams every event as a JSON line, errors as {code, message, status}", () => {
    const events = new Emitter<SchedulerEvents>(() => {});
    const out = memory(false);
    const progress = createProgress("json", out);
    progress?.start(new RunMetrics({ startedAt: 0 }), events, () => 0);
    const error = Object.assign(new Error("slow down"), {
      code: "SALVO_RATE_LIMITED",
      status: 429,
    });
    events.emit("rate-limited", {
      ...counts(5),
      id: "a",
      index: 0,
      scope: undefined,
      attempt: 1,
      error,
      retryAfterMs: 200,
    });
    events.emit("succeeded", {
      ...counts(9),
      id: "a",
      index: 0,
      scope: undefined,
      attempts: 2,
      latencyMs: 9,
      value: { big: "body" },
    });
    progress?.stop();
    const lines = out.text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({
      event: "rate-limited",
      id: "a",
      retryAfterMs: 200,
      error: { code: "SALVO_RATE_LIMITED", message: "slow down", status: 429 },
    });
    expect(lines[1]).toMatchObject({ event: "succeeded", attempts: 2 });
    expect(lines[1].value).toBeUndefined();
  });

  it("the bar draws done/total and the live counts", () => {
    const events = new Emitter<SchedulerEvents>(() => {});
    const metrics = new RunMetrics({ startedAt: 0, total: 4 });
    metrics.attach(events);
    const out = memory(true);
    const progress = createProgress("bar", out, { barIntervalMs: 60_000 });
    progress?.start(metrics, events, () => 1000);
    events.emit("succeeded", {
      ...counts(10),
      id: 1,
      index: 0,
      scope: undefined,
      attempts: 1,
      latencyMs: 10,
      value: {},
    });
    progress?.stop();
    expect(out.text).toContain("1/4 | 0 failed | in flight 2/8");
  });

  it("formats durations and counts", () => {
    expect([
      formatDuration(950),
      formatDuration(12_340),
      formatDuration(245_000),
      formatDuration(3_720_000),
    ]).toEqual(["950ms", "12.3s", "4m05s", "1h02m"]);
    expect([formatCount(950), formatCount(12_340), formatCount(4_100_000)]).toEqual([
      "950",
      "12k",
      "4.1M",
    ]);
  });
});
