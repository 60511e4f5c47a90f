import { describe, expect, it } from "vitest";
import { FakeTerminal } from "../../test/support/fake-terminal.ts";
import { StaticConcurrency } from "../core/concurrency/static-concurrency.ts";
import { Emitter } from "../core/emitter.ts";
import type { SchedulerEvents } from "../core/events.ts";
import { FakeClock } from "../core/fake-clock.ts";
import { Scheduler } from "../core/scheduler.ts";
import { AbortedError, ServerError } from "../errors.ts";
import { RunMetrics } from "../metrics/run-metrics.ts";
import { formatCount, formatDuration } from "./format.ts";
import { createProgress } from "./progress-renderer.ts";

function memory(isTTY: boolean) {
  const out = { text: "", isTTY, write: (t: string) => (out.text += t) };
  return out;
}
const counts = (at: number) => ({ at, inFlight: 2, queued: 5, limit: 8 });

/** A scheduler on a fake clock whose tasks take `ms` of fake time, with its metrics. */
function fakeRun(options: { concurrency: number; total: number; ms?: number }) {
  const clock = new FakeClock();
  const scheduler = new Scheduler({
    concurrency: new StaticConcurrency(options.concurrency),
    clock,
    retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10, budget: false },
  });
  const metrics = new RunMetrics({ startedAt: 0, total: options.total });
  metrics.attach(scheduler);
  return { clock, scheduler, metrics, ms: options.ms ?? 100 };
}

/** The bar's lines on the screen: those with a done/total count. */
const barLines = (term: FakeTerminal) => term.screen.filter((l) => /\d+\/\d+/.test(l));

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

  it("the bar redraws in place on the fake clock: one line on screen, done/total and the live counts", async () => {
    const run = fakeRun({ concurrency: 4, total: 20, ms: 90 });
    const term = new FakeTerminal(100);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 200 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    const done = run.scheduler.map(Array.from({ length: 20 }), (_, task) =>
      run.clock.sleep(run.ms, task.signal),
    );
    await run.clock.advance(250);
    expect(term.screen).toHaveLength(1);
    expect(term.screen[0]).toMatch(/ 8\/20 \| 0 failed \| in flight 4\/4 /);
    await run.clock.advance(400);
    expect(term.screen).toHaveLength(1);
    expect(term.screen[0]).toMatch(/ 20\/20 \| 0 failed \| in flight 0\/4 /);
    await done;
    progress?.stop();
    expect(term.unknown).toEqual([]);
    // Several redraws happened, all on the same line.
    expect(term.writes.length).toBeGreaterThan(2);
    expect(term.screen).toHaveLength(1);
  });

  it("the ETA is Salvo's formatted duration, never cli-progress's bare seconds", async () => {
    const run = fakeRun({ concurrency: 1, total: 100, ms: 1000 });
    const term = new FakeTerminal(200);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 200 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    void run.scheduler.map(Array.from({ length: 100 }), (_, task) =>
      run.clock.sleep(run.ms, task.signal),
    );
    await run.clock.advance(10_100);
    progress?.stop();
    // 10 done in 10 s, one a second: 90 left take about 1m30s.
    const line = barLines(term).at(-1)!;
    expect(line).toMatch(/eta 1m3[01]s$/);
    expect(line).not.toMatch(/eta \d+(\s|$)/);
    await run.scheduler.close();
  });

  it("at 80 columns the line keeps the counts, 429s, retries and the ETA, and never wraps", async () => {
    const run = fakeRun({ concurrency: 8, total: 2000, ms: 50 });
    const term = new FakeTerminal(80);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 200 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    let calls = 0;
    void run.scheduler.map(Array.from({ length: 2000 }), async (_, task) => {
      await run.clock.sleep(run.ms, task.signal);
      if (++calls % 7 === 0) throw new ServerError("boom", { status: 500 });
    });
    await run.clock.advance(3_000);
    progress?.stop();
    for (const line of term.screen) expect(line.length).toBeLessThan(80);
    expect(term.screen).toHaveLength(1);
    const line = term.screen[0]!;
    expect(line).toMatch(/^█*░* ?\d+\/2000 \| \d+ failed/);
    expect(line).toMatch(/retries [1-9]\d*/);
    expect(line).toContain("429s 0");
    expect(line).toMatch(/eta \d/);
    await run.scheduler.close();
  });

  it("in flight never shows more than the limit it shows, and is 0 once every item is done", async () => {
    const run = fakeRun({ concurrency: 4, total: 12 });
    const term = new FakeTerminal(120);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 50 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    const done = run.scheduler.map(Array.from({ length: 12 }), (_, task) =>
      run.clock.sleep(run.ms, task.signal),
    );
    await run.clock.advance(120);
    // The limit is lowered while 4 are in flight: they run on, the display says so in words.
    (run.scheduler.controller as StaticConcurrency).setLimit(2);
    await run.clock.advance(60);
    const lowered = term.screen[0]!;
    expect(lowered).not.toMatch(
      /in flight (\d+)\/(\d+)/.test(lowered) ? /in flight [3-9]\/2/ : /$^/,
    );
    expect(lowered).toMatch(/in flight [34] \(limit lowered to 2\)|in flight [0-2]\/2/);
    await run.clock.advance(1_000);
    await done;
    progress?.stop();
    const last = term.screen[0]!;
    expect(last).toMatch(/ 12\/12 \| 0 failed \| in flight 0\/2/);
    for (const write of term.writes) {
      for (const [, inFlight, limit] of write.matchAll(/in flight (\d+)\/(\d+)/g))
        expect(Number(inFlight)).toBeLessThanOrEqual(Number(limit));
    }
  });

  it("after an interrupt the last redraw stays above the summary and says stopped, not failed", async () => {
    const run = fakeRun({ concurrency: 2, total: 10, ms: 1000 });
    const term = new FakeTerminal(100);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 200 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    const interrupt = new AbortController();
    const done = run.scheduler.map(
      Array.from({ length: 10 }),
      (_, task) => run.clock.sleep(run.ms, task.signal),
      {
        signal: interrupt.signal,
      },
    );
    await run.clock.advance(1_500);
    interrupt.abort(new AbortedError("received SIGINT"));
    await done;
    await run.clock.advance(400);
    progress?.stop();
    // Nothing is drawn after stop: the summary goes below the bar's last state and stays.
    term.write("salvo run: 10 items: 2 succeeded, 0 failed; 8 not run (interrupted)\n");
    await run.clock.advance(2_000);
    expect(term.screen).toHaveLength(2);
    expect(term.screen[0]).toMatch(/ 2\/10 \| 0 failed \| 8 stopped/);
    expect(term.screen[1]).toMatch(/^salvo run: /);
  });

  it("--progress bar to a non-terminal prints no raw placeholders: plain lines, and says so once", () => {
    const events = new Emitter<SchedulerEvents>(() => {});
    const metrics = new RunMetrics({ startedAt: 0, total: 3 });
    metrics.attach(events);
    const out = memory(false);
    const progress = createProgress("bar", out, { plainIntervalMs: 60_000 });
    progress?.start(metrics, events, () => 1000);
    events.emit("failed", {
      ...counts(10),
      id: 1,
      index: 0,
      scope: undefined,
      attempts: 1,
      latencyMs: 10,
      error: new Error("x"),
      reason: "not-retryable",
    });
    progress?.stop();
    expect(out.text).not.toMatch(/[{}]/);
    expect(out.text).not.toContain("\u001b");
    expect(out.text).toContain("needs a terminal");
    expect(out.text).toContain("1/3 done | 1 failed");
  });

  it("a message printed during the run goes above the bar, which is drawn again below it", async () => {
    const run = fakeRun({ concurrency: 2, total: 4 });
    const term = new FakeTerminal(100);
    const progress = createProgress("bar", term, { clock: run.clock, barIntervalMs: 200 });
    progress?.start(run.metrics, run.scheduler, () => run.clock.now());
    const done = run.scheduler.map(Array.from({ length: 4 }), (_, task) =>
      run.clock.sleep(run.ms, task.signal),
    );
    await run.clock.advance(150);
    progress?.print("salvo: warning: something to know");
    progress?.note("interrupted: finishing calls in flight");
    expect(term.screen[0]).toBe("salvo: warning: something to know");
    expect(term.screen[1]).toMatch(/2\/4 \| 0 failed \| interrupted: finishing calls in flight/);
    await run.clock.advance(1_000);
    await done;
    progress?.stop();
    expect(term.screen).toHaveLength(2);
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
