// What a rerun of `salvo run` does with what it finds: an input line edited since its answer is
// asked again (whether the run had completed or not), an input that grew during a run is read
// only as far as it was scanned and the rerun takes the rest, and the lines that failed
// transiently are run again while answers are never paid for twice and permanent failures stay.
// End to end over HTTP against the simulator, whose timeline says which prompts were asked.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, it } from "vitest";
import type { BatchItem } from "../src/batch/input-line.ts";
import type { ItemOutcome, OutputLine } from "../src/batch/output-line.ts";
import { runBatch } from "../src/batch/run-batch.ts";
import { runCli } from "../src/cli/main.ts";
import { expectedMarker, type SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { completeLines, until } from "./support/salvo-process.ts";
import { useWorkspace } from "./support/workspace.ts";

const FAKE_KEY = "sk-test-resume-not-a-real-key";
const ws = useWorkspace("salvo-resume-", {
  latency: { ttftMs: 5, msPerToken: 0 },
  output: { tokens: 4 },
});

type Message = { role: string; content: string };
const messages = (i: number, prompt = `question ${i}`): Message[] => [
  { role: "user", content: prompt },
];

function batchLine(i: number, msgs: Message[] = messages(i)): string {
  return JSON.stringify({
    custom_id: `item-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", messages: msgs },
  });
}

async function writeInput(path: string, lines: string[]): Promise<void> {
  await writeFile(path, `${lines.join("\n")}\n`);
}

async function salvo(args: string[], signal?: AbortSignal) {
  const io = memoryIo({ OPENAI_API_KEY: FAKE_KEY }, signal);
  const code = await runCli(args, io);
  return { code, err: io.err, out: io.out };
}

const runArgs = (input: string, output: string, sim: SimHandle, ...extra: string[]) => [
  "run",
  input,
  "-o",
  output,
  "--base-url",
  sim.baseUrl,
  "--progress",
  "none",
  ...extra,
];

async function output(path: string): Promise<OutputLine[]> {
  return (await readFile(path, "utf8"))
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as OutputLine);
}

const answerOf = (line: OutputLine) =>
  (line.response?.body as { choices: Array<{ message: { content: string } }> } | undefined)
    ?.choices[0]?.message.content ?? "";

/** The simulator's requests since the last call, as prompt markers. */
function asked(sim: SimHandle): () => string[] {
  let seen = 0;
  return () => {
    const timeline = sim.stats().timeline;
    const markers = timeline.slice(seen).map((e) => e.marker ?? "(bad body)");
    seen = timeline.length;
    return markers;
  };
}

it("an input line edited after a completed run is asked again, not answered with the stale answer", async () => {
  const sim = await ws.simulator();
  const input = join(ws.dir, "in.jsonl");
  const out = join(ws.dir, "out.jsonl");
  const lines = Array.from({ length: 10 }, (_, i) => batchLine(i));
  await writeInput(input, lines);
  const newRequests = asked(sim);
  expect((await salvo(runArgs(input, out, sim))).code).toBe(0);
  expect(newRequests()).toHaveLength(10);

  // Line 6: the same custom_id, another prompt.
  const edited = messages(5, "a different question");
  lines[5] = batchLine(5, edited);
  await writeInput(input, lines);
  const rerun = await salvo(runArgs(input, out, sim));
  expect(rerun.code, rerun.err).toBe(0);
  expect(newRequests()).toEqual([expectedMarker(edited)]);
  const after = await output(out);
  expect(after.map((l) => l.custom_id)).toEqual(lines.map((_, i) => `item-${i}`));
  expect(answerOf(after[5]!).startsWith(expectedMarker(edited))).toBe(true);
  for (const i of [0, 4, 6, 9])
    expect(answerOf(after[i]!).startsWith(expectedMarker(messages(i)))).toBe(true);
  // A rerun with nothing changed asks nothing.
  expect((await salvo(runArgs(input, out, sim))).code).toBe(0);
  expect(newRequests()).toEqual([]);
});

it("the same edit during a partial run is asked again too, not refused", async () => {
  const sim = await ws.simulator({ latency: { ttftMs: 40, msPerToken: 0 } });
  const input = join(ws.dir, "in.jsonl");
  const out = join(ws.dir, "out.jsonl");
  const lines = Array.from({ length: 12 }, (_, i) => batchLine(i));
  await writeInput(input, lines);
  const newRequests = asked(sim);
  const stop = new AbortController();
  const first = salvo(runArgs(input, out, sim, "--concurrency", "1"), stop.signal);
  await until(() => completeLines(out).length >= 3, 20_000, "three answers");
  stop.abort(new Error("test: stop"));
  expect((await first).code).toBe(130);
  const done = completeLines(out).length;
  expect(done).toBeLessThan(12);
  const firstAsked = newRequests().length;

  const edited = messages(1, "line 2, edited after its answer");
  lines[1] = batchLine(1, edited);
  await writeInput(input, lines);
  const rerun = await salvo(runArgs(input, out, sim));
  expect(rerun.code, rerun.err).toBe(0);
  const again = newRequests();
  expect(again).toContain(expectedMarker(edited));
  // Line 2 again, and what the first run had not finished (at most one was in flight at the stop).
  expect(again.length).toBeLessThanOrEqual(1 + 12 - done);
  expect(firstAsked + again.length).toBeLessThanOrEqual(12 + 1 + 1);
  const after = await output(out);
  expect(after).toHaveLength(12);
  expect(answerOf(after[1]!).startsWith(expectedMarker(edited))).toBe(true);
});

it("an input that grows during a run: the run asks exactly the items it scanned, and the rerun resumes and asks only the new ones", async () => {
  const input = join(ws.dir, "in.jsonl");
  const out = join(ws.dir, "out.jsonl");
  const N = 50;
  // 10 KB lines, so that the reader is still far from the end when the input grows.
  const long = (i: number) => batchLine(i, messages(i, `question ${i} ${"x".repeat(10_000)}`));
  await writeInput(
    input,
    Array.from({ length: N }, (_, i) => long(i)),
  );
  const calls: number[] = [];
  const execute = async (item: BatchItem): Promise<ItemOutcome> => {
    calls.push(item.index);
    // Another program appends 10 lines while the run is in progress.
    if (item.index === 3)
      await writeFile(input, `${Array.from({ length: 10 }, (_, i) => long(N + i)).join("\n")}\n`, {
        flag: "a",
      });
    return { ok: true, value: { status: 200, body: { n: item.index } }, attempts: 1, latencyMs: 1 };
  };
  const first = await runBatch({ input, output: out, execute, window: 4, concurrency: 2 });
  expect(first).toMatchObject({ total: N, executed: N, succeeded: N, interrupted: false });
  expect(calls).toHaveLength(N);
  expect(completeLines(out)).toHaveLength(N);

  calls.length = 0;
  const rerun = await runBatch({ input, output: out, execute, window: 4, concurrency: 2 });
  expect(rerun).toMatchObject({ total: N + 10, executed: 10, resumedFromOutput: N });
  expect(calls.sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => N + i));
  const lines = await output(out);
  expect(lines.map((l) => l.custom_id)).toEqual(
    Array.from({ length: N + 10 }, (_, i) => `item-${i}`),
  );
});

it("a rerun asks again the lines that failed transiently, keeps those that failed for good, and never pays twice for an answer", async () => {
  const sim = await ws.simulator({
    seed: 7,
    faults: { p500: 0.12, p503: 0.08, pReset: 0.05, pMalformed: 0.05 },
  });
  const input = join(ws.dir, "in.jsonl");
  const out = join(ws.dir, "out.jsonl");
  const N = 60;
  // Every tenth line asks with a role the provider refuses: a 400, which waiting will not fix.
  const msgs = Array.from({ length: N }, (_, i) =>
    i % 10 === 9 ? [{ role: "robot", content: `question ${i}` }] : messages(i),
  );
  await writeInput(
    input,
    msgs.map((m, i) => batchLine(i, m)),
  );
  const markerOf = new Map(msgs.map((m, i) => [expectedMarker(m), i]));
  const newRequests = asked(sim);
  const args = runArgs(input, out, sim, "--max-attempts", "1", "--concurrency", "8");

  let run = await salvo(args);
  expect(run.code, run.err).toBe(1);
  newRequests();
  const permanent = new Set(Array.from({ length: N / 10 }, (_, k) => k * 10 + 9));
  const failedFirst = (await output(out)).filter((l) => l.error !== null).length;
  expect(failedFirst).toBeGreaterThan(permanent.size + 5);
  for (let pass = 1; pass <= 15; pass++) {
    const before = await output(out);
    const transient = before.flatMap((l, i) => (l.error !== null && !permanent.has(i) ? [i] : []));
    for (const i of permanent) expect(before[i]!.error).toMatchObject({ status: 400 });
    if (transient.length === 0) break;
    run = await salvo(args);
    // Exactly the transient failures were asked again, once each: no answer, no 400.
    const again = newRequests().map((m) => markerOf.get(m));
    expect(again.sort((a, b) => a! - b!)).toEqual(transient);
  }
  const final = await output(out);
  expect(final.map((l) => l.custom_id)).toEqual(msgs.map((_, i) => `item-${i}`));
  final.forEach((line, i) => {
    if (permanent.has(i)) expect(line.error).toMatchObject({ code: "SALVO_CLIENT_ERROR" });
    else expect(line.error, `line ${i + 1}`).toBeNull();
  });
  expect(run.code).toBe(1); // the 400s remain, and the exit code still says so
  // Successful answers asked once each over all the runs.
  const answered = sim
    .stats()
    .timeline.filter((e) => e.status === 200 && e.fault === null && e.marker !== null);
  expect(answered).toHaveLength(N - permanent.size);

  // --retry-failed asks the permanent failures again too (they fail again), and still no answer.
  const retry = await salvo([...args, "--retry-failed"]);
  expect(retry.code).toBe(1);
  // (the simulator refuses their bodies before it reads a prompt: they carry no marker)
  expect(newRequests()).toEqual([...permanent].map(() => "(bad body)"));
  expect((await output(out)).filter((l) => l.error !== null)).toHaveLength(permanent.size);
}, 60_000);
