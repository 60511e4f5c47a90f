// Kills a real batch run with SIGKILL at random moments, reruns it to completion, and checks the
// crash-safety invariant: every line exactly once, in order, with the right content, and no item
// whose answer had reached the journal or the output was called again.

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

const script = join(import.meta.dirname, "fixtures/batch/crash-run.ts");
const ITEMS = 300;
const KILLS = 10;
const CONCURRENCY = 8;

/** A small seeded generator (mulberry32), so a failure can be replayed from the printed seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function start(args: string[]) {
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d;
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** Complete, parsable lines of a file (a torn last line is not counted). */
function completeLines(path: string): unknown[] {
  if (!existsSync(path)) return [];
  const parts = readFileSync(path, "utf8").split("\n");
  parts.pop(); // the part after the last newline: empty, or torn
  const out: unknown[] = [];
  for (const part of parts) {
    try {
      out.push(JSON.parse(part));
    } catch {
      // An unparsable line can only be a torn tail; resume cuts it.
    }
  }
  return out;
}

/** Indices whose answer is durable: in the output's complete lines or in the journal. */
function durable(output: string): Set<number> {
  const done = new Set<number>();
  const inOutput = completeLines(output).length;
  for (let i = 0; i < inOutput; i++) done.add(i);
  for (const record of completeLines(`${output}.journal`).slice(1))
    done.add((record as { i: number }).i);
  return done;
}

it("a batch run killed with SIGKILL at random moments resumes to a complete, ordered output without paying twice", async () => {
  const seed = Number(process.env.SALVO_CRASH_SEED ?? Date.now() % 1_000_000);
  const random = seeded(seed);
  const dir = await mkdtemp(join(tmpdir(), "salvo-crash-"));
  const input = join(dir, "in.jsonl");
  const output = join(dir, "out.jsonl");
  const calls = join(dir, "calls.log");
  await writeFile(
    input,
    Array.from({ length: ITEMS }, (_, i) =>
      JSON.stringify({
        custom_id: `item-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "m", messages: [{ role: "user", content: `q${i}` }], metadata: { n: i } },
      }),
    ).join("\n"),
  );

  // durableBefore[r]: the indices durable when run r started.
  const durableBefore: Array<Set<number>> = [];
  let killedMidRun = 0;
  for (let run = 0; run < KILLS; run++) {
    durableBefore.push(durable(output));
    const proc = start([input, output, calls, String(run), String(CONCURRENCY)]);
    await new Promise((resolve) => setTimeout(resolve, 30 + random() * 270));
    proc.child.kill("SIGKILL");
    const { code, signal } = await proc.exited;
    if (signal === "SIGKILL") killedMidRun += 1;
    else expect(code, proc.output().stderr).toBe(0); // it finished before the kill
  }
  durableBefore.push(durable(output));
  const last = start([input, output, calls, String(KILLS), String(CONCURRENCY)]);
  const { code } = await last.exited;
  expect(code, last.output().stderr).toBe(0);

  // Every line exactly once, in input order, with the answer for its own item.
  const text = readFileSync(output, "utf8");
  expect(text.endsWith("\n")).toBe(true);
  const lines = text
    .slice(0, -1)
    .split("\n")
    .map(
      (l) =>
        JSON.parse(l) as {
          custom_id: string;
          line: number;
          response: { body: { echo: string; square: number } };
        },
    );
  expect(lines).toHaveLength(ITEMS);
  lines.forEach((line, i) => {
    expect(line.custom_id).toBe(`item-${i}`);
    expect(line.line).toBe(i + 1);
    expect(line.response.body).toEqual({ echo: `item-${i}`, square: i * i });
  });
  expect(existsSync(`${output}.journal`)).toBe(false);

  // No index durable before a run was called by that run; only in-flight items were repeated.
  const log = readFileSync(calls, "utf8").trim().split("\n");
  const perIndex = new Map<number, number>();
  for (const entry of log) {
    const [run, index] = entry.split(" ").map(Number) as [number, number];
    expect(
      durableBefore[run]!.has(index),
      `run ${run} called index ${index}, durable before it`,
    ).toBe(false);
    perIndex.set(index, (perIndex.get(index) ?? 0) + 1);
  }
  expect(perIndex.size).toBe(ITEMS);
  for (const n of perIndex.values()) expect(n).toBeLessThanOrEqual(1 + killedMidRun);
  const extra = log.length - ITEMS;
  const runsWithCalls = new Set(log.map((entry) => entry.split(" ")[0])).size;
  expect(extra).toBeLessThanOrEqual(CONCURRENCY * killedMidRun);
  console.log(
    `crash test (seed ${seed}): ${killedMidRun} kills mid-run, ${runsWithCalls} of ${KILLS + 1} runs made calls, ${log.length} calls for ${ITEMS} items (${extra} repeated, bound ${CONCURRENCY * killedMidRun}); durable before each run: ${durableBefore.map((s) => s.size).join(", ")}`,
  );
}, 30_000);
