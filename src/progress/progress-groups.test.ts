// The nested view: one display owner draws the overall line and a line per group (the library's
// named scopes, a pipeline's stages), all from one moment's counts, on a fake terminal and the
// fake clock.
import { describe, expect, it } from "vitest";
import { FakeTerminal } from "../../test/support/fake-terminal.ts";
import { FakeClock } from "../core/fake-clock.ts";
import { Scheduler } from "../core/scheduler.ts";
import { ClientError } from "../errors.ts";
import { ProgressGroups } from "./progress-groups.ts";
import { showProgress } from "./show-progress.ts";

/** `done/total` of a line, as numbers. */
function counts(line: string): [number, number] {
  const match = /(\d+)\/(\d+)\+?(?= \|)/.exec(line);
  if (match === null) throw new Error(`no counts in ${JSON.stringify(line)}`);
  return [Number(match[1]), Number(match[2])];
}

describe("progress groups", () => {
  it("the library's scopes (claims x items) each show their own line, in sync, failures counted on each, collapsing when done", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ concurrency: 12, clock, retry: { maxAttempts: 1 } });
    const term = new FakeTerminal(100);
    const progress = showProgress(scheduler, {
      output: term,
      mode: "bar",
      clock,
      barIntervalMs: 100,
      lingerMs: 300,
    });
    // Three claims in parallel, each with its own scope for its line items; claim B's item 2
    // fails; claim A's items take 100 ms, B's 400 ms, C's 800 ms.
    const claims = ["claim-A", "claim-B", "claim-C"];
    const run = scheduler.map(claims, async (claim, task) => {
      const scope = scheduler.scope({ name: claim });
      const ms = [100, 400, 800][claims.indexOf(claim)]!;
      return scope.map([0, 1, 2, 3], async (item) => {
        await clock.sleep(ms, task.signal);
        if (claim === "claim-B" && item === 2)
          throw new ClientError("bad line item", { status: 400 });
        return item;
      });
    });
    await clock.advance(250);
    // All three scopes on screen at once, under the overall line, each with its own counts.
    const mid = term.screen;
    expect(mid).toHaveLength(4);
    expect(mid[1]).toMatch(/^ {2}claim-A /);
    expect(mid[2]).toMatch(/^ {2}claim-B /);
    expect(mid[3]).toMatch(/^ {2}claim-C /);
    // In sync: the overall count is the scopes' counts, plus each claim whose items are all done
    // (the claim's own task ends with them).
    const [overall] = counts(mid[0]!);
    const scoped = mid.slice(1).reduce((n, line) => n + counts(line)[0], 0);
    const claimsDone = mid.slice(1).filter((line) => line.endsWith("| done")).length;
    expect(overall).toBe(scoped + claimsDone);
    expect(counts(mid[1]!)).toEqual([4, 4]);
    expect(mid[1]).toContain("done");

    expect(mid[2]).toMatch(/ 0\/4\+ \| 0 failed \| in flight 4$/);
    await clock.advance(300);
    const later = term.screen;
    // claim-A finished over 300 ms ago: collapsed into the "done" line; B just ended, with the
    // one failure on its own line; C still runs.
    expect(later).toHaveLength(4);
    expect(later[1]).toBe("  done: 1 scope | 4/4 | 0 failed | claim-A");
    expect(later[2]).toMatch(/^ {2}claim-B █+ 4\/4 \| 1 failed \| done$/);
    expect(later[3]).toMatch(/^ {2}claim-C ░+ 0\/4\+ \| 0 failed \| in flight 4$/);

    await clock.advance(2_000);
    await run;
    await clock.advance(1_100);
    progress.stop();
    expect(term.screen).toEqual([
      expect.stringMatching(/ 15\/15 \| 1 failed \| in flight 0\/12 /),
      expect.stringMatching(
        /^ {2}done: 3 scopes \| 12\/12 \| 1 failed \| claim-A, claim-B, claim-C$/,
      ),
    ]);
    expect(term.unknown).toEqual([]);
  });

  it("beyond the lines it may draw, the rest of the running scopes are added up on one line", async () => {
    const clock = new FakeClock();
    const scheduler = new Scheduler({ concurrency: 20, clock });
    const term = new FakeTerminal(100);
    const progress = showProgress(scheduler, {
      output: term,
      mode: "bar",
      clock,
      barIntervalMs: 100,
      maxScopeLines: 3,
    });
    const runs = Array.from({ length: 10 }, (_, i) =>
      scheduler.scope({ name: `s${i}` }).map([1, 2], () => clock.sleep(1_000)),
    );
    await clock.advance(150);
    expect(term.screen).toHaveLength(5);
    expect(term.screen[4]).toMatch(/^ {2}\+ 7 more scopes \| 0\/14 \| 0 failed \| in flight 14$/);
    await clock.advance(1_000);
    await Promise.all(runs);
    progress.stop();
  });

  it("declared groups (a pipeline's stages) take their ends from the caller, in flight from the events", () => {
    const groups = new ProgressGroups({
      groupOf: ({ id }) => String(id).split("/")[0],
      noun: "stages",
      endsFromEvents: false,
    });
    groups.declare("parts", 2);
    groups.declare("summary", 1);
    const listeners = new Map<string, (e: unknown) => void>();
    groups.attach({
      on: (event, listener) => {
        listeners.set(event, listener as (e: unknown) => void);
        return () => listeners.delete(event);
      },
    });
    const ref = (id: string) => ({
      id,
      index: 0,
      scope: undefined,
      at: 0,
      inFlight: 1,
      queued: 0,
      limit: 4,
    });
    listeners.get("started")!({ ...ref("parts/a"), attempt: 1, waitedMs: 0 });
    listeners.get("started")!({ ...ref("parts/b"), attempt: 1, waitedMs: 0 });
    listeners.get("succeeded")!({ ...ref("parts/a"), attempts: 1, latencyMs: 1, value: 1 });
    groups.ended("parts", "resumed");
    expect(
      groups.view(0).lines.map(({ name, inFlight, resumed, succeeded, finished }) => ({
        name,
        inFlight,
        resumed,
        succeeded,
        finished,
      })),
    ).toEqual([
      { name: "parts", inFlight: 1, resumed: 1, succeeded: 0, finished: false },
      { name: "summary", inFlight: 0, resumed: 0, succeeded: 0, finished: false },
    ]);
    listeners.get("failed")!({
      ...ref("parts/b"),
      attempts: 1,
      latencyMs: 1,
      error: new Error("x"),
      reason: "not-retryable",
    });
    groups.ended("parts", "failed");
    const view = groups.view(100, { lingerMs: 50 });
    expect(view.lines.map((g) => g.name)).toEqual(["parts", "summary"]);
    expect(groups.view(200, { lingerMs: 50 }).done).toMatchObject({
      groups: 1,
      failed: 1,
      resumed: 1,
      names: ["parts"],
    });
    // A collapsed group leaves memory: only its sums are kept.
    expect(groups.snapshot().map((g) => g.name)).toEqual(["summary"]);
  });
});
