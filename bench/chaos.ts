// Chaos: `salvo run` and `salvo pipeline` as real processes (bin/salvo.js), killed with SIGKILL
// again and again at random moments (during start-up, mid-run, and during the final writes),
// each time rerun at once, until a run completes. Then the promises are checked against the
// simulator's own record of every request (it runs in this process, so it outlives the kills):
//   - the output has every line exactly once, in input order, each the answer to its own prompt
//     (a pipeline: every task journaled once, every output file the answer to its prompt);
//   - no answer that was kept (in the output or the journal) when a run started was asked for
//     again by that run;
//   - paid calls <= lines + the calls in flight at the kills, where a call is in flight at a kill
//     if the simulator was serving it at that moment, or had answered it while the killed run had
//     not yet journaled the answer; and at no kill more than twice the concurrency was in flight;
//   - no lock file and no temporary file is left behind.
// The short form runs in `npm test` (test/chaos-run.test.ts, test/chaos-pipeline.test.ts); the
// long one here:
//   node bench/chaos.ts [--lines 2000] [--kills 25] [--tasks 60] [--pipeline-kills 15] [--seed N]
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectedMarker, type SimHandle, startSimulator } from "../src/sim/index.ts";

const BIN = new URL("../bin/salvo.js", import.meta.url).pathname;
const KEY = "sk-chaos-not-a-real-key";

/** A small seeded generator (mulberry32), so a failing run can be replayed from its seed. */
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

type Child = {
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  done: () => boolean;
  kill: () => void;
  stderr: () => string;
};

function start(args: string[]): Child {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, OPENAI_API_KEY: KEY },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d;
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  return { exited, done: () => done, kill: () => child.kill("SIGKILL"), stderr: () => stderr };
}

/** Complete lines of a file (a torn last line is left out); [] when it does not exist. */
function lines(path: string): string[] {
  if (!existsSync(path)) return [];
  const parts = readFileSync(path, "utf8").split("\n");
  parts.pop();
  return parts;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `condition` holds or the child exits; true if the condition held. */
async function until(child: Child, condition: () => boolean, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!child.done()) {
    if (condition()) return true;
    if (Date.now() > deadline) throw new Error("chaos: timed out waiting for a kill moment");
    await sleep(2);
  }
  return false;
}

/** How one kill is timed. */
export type Moment = "start-up" | "mid-run" | "final write";

export type ChaosResult = {
  /** Kills that hit a running process (the rest found it already finished). */
  kills: number;
  moments: Record<Moment, number>;
  /** Items (lines or tasks). */
  items: number;
  /** Requests the simulator received in all. */
  calls: number;
  /** Calls in flight at each kill (see the module comment). */
  inFlightAtKills: number[];
  /** items + the calls in flight at the kills: what `calls` may not exceed. */
  bound: number;
  /** Every broken promise, described; empty when all held. */
  violations: string[];
  seed: number;
};

export type ChaosOptions = {
  /** Lines of the batch input, or forEach items of the pipeline (tasks = 2 * items + 1). */
  items: number;
  /** Kills before the run that must complete. */
  kills: number;
  /**
   * How each kill is timed, in order (the rest at random). @default random, the last one during
   * the final write
   */
  moments?: Moment[] | undefined;
  concurrency: number;
  seed: number;
  /** Where the files go. @default a temporary directory, removed after */
  dir?: string | undefined;
};

type RunWindow = {
  startMs: number;
  endMs: number;
  killMs: number | undefined;
  /** Items kept when the run started. */
  durable: Set<number>;
  /** What a snapshot at its start recorded (a pipeline: the kept values, by item). */
  values: Map<number, string> | undefined;
};

/** Sim time now, for the timeline's clock. */
const simNow = (sim: SimHandle) => sim.stats({ timeline: false }).uptimeMs;

async function drain(sim: SimHandle): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const s = sim.stats({ timeline: false });
    if (s.inService === 0 && s.queued === 0) return;
    await sleep(5);
  }
}

/**
 * Runs the kill-and-rerun loop: `args` starts the command, `durable` reads which items are kept,
 * `done` says the work is complete (the final write is under way). Returns each run's window in
 * simulator time and what was durable when it started.
 */
async function killLoop(
  sim: SimHandle,
  options: ChaosOptions,
  args: string[],
  durable: () => Set<number>,
  done: () => boolean,
  snapshot?: () => Map<number, string>,
): Promise<{
  windows: RunWindow[];
  moments: Record<Moment, number>;
  violations: string[];
  last: Child;
}> {
  const random = seeded(options.seed);
  const windows: RunWindow[] = [];
  const moments: Record<Moment, number> = { "start-up": 0, "mid-run": 0, "final write": 0 };
  const violations: string[] = [];
  /** A run's window, from now, over what was durable when it started. */
  const openWindow = (before: Set<number>): RunWindow => ({
    startMs: simNow(sim),
    endMs: 0,
    killMs: undefined,
    durable: before,
    values: snapshot?.(),
  });
  for (let k = 0; k < options.kills; k++) {
    // At least one kill aims at the final write; the others at random times or progress.
    const moment: Moment =
      options.moments?.[k] ??
      (k === options.kills - 1 || random() < 0.15
        ? "final write"
        : random() < 0.3
          ? "start-up"
          : "mid-run");
    const before = durable();
    const window = openWindow(before);
    const child = start(args);
    let hit: boolean;
    if (moment === "start-up") {
      await sleep(random() * 1500);
      hit = !child.done();
    } else if (moment === "mid-run") {
      const target = before.size + Math.ceil(random() * (options.items - before.size) * 0.8);
      hit = await until(child, () => durable().size >= target);
    } else hit = await until(child, done);
    if (hit) {
      window.killMs = simNow(sim);
      child.kill();
      moments[moment] += 1;
    }
    const { code, signal } = await child.exited;
    if (!hit && code !== 0 && code !== 1)
      violations.push(
        `run ${k} exited ${code ?? signal} on its own: ${child.stderr().slice(-500)}`,
      );
    await drain(sim);
    window.endMs = simNow(sim);
    windows.push(window);
  }
  const before = durable();
  const window = openWindow(before);
  const last = start(args);
  const { code } = await last.exited;
  await drain(sim);
  window.endMs = simNow(sim);
  windows.push(window);
  if (code !== 0) violations.push(`the final run exited ${code}: ${last.stderr().slice(-800)}`);
  return { windows, moments, violations, last };
}

/**
 * For each run: requests asked for an item durable when the run started (a violation), and the
 * calls in flight at its kill.
 */
function account(
  sim: SimHandle,
  windows: RunWindow[],
  itemOf: (marker: string, run: RunWindow) => number | undefined,
  durableAfter: (run: number) => Set<number>,
  concurrency: number,
  violations: string[],
): number[] {
  const timeline = sim.stats().timeline;
  const inFlight: number[] = [];
  windows.forEach((run, r) => {
    const asked = timeline.filter((e) => e.arrivalMs >= run.startMs && e.arrivalMs <= run.endMs);
    for (const e of asked) {
      const item = e.marker === null ? undefined : itemOf(e.marker, run);
      if (item !== undefined && run.durable.has(item))
        violations.push(`run ${r} asked again for item ${item}, kept before it started`);
    }
    if (run.killMs === undefined) return;
    const killMs = run.killMs;
    const after = durableAfter(r);
    const serving = asked.filter((e) => e.endMs >= killMs).length;
    const answeredNotKept = asked.filter((e) => {
      if (e.endMs >= killMs || e.status !== 200 || e.marker === null) return false;
      const item = itemOf(e.marker, run);
      return item !== undefined && !after.has(item);
    }).length;
    inFlight.push(serving + answeredNotKept);
    if (serving + answeredNotKept > 2 * concurrency)
      violations.push(
        `run ${r}: ${serving} calls in service and ${answeredNotKept} answered but not kept at the kill, over twice the concurrency ${concurrency}`,
      );
  });
  return inFlight;
}

function leftovers(dir: string, violations: string[]): void {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)],
    );
  for (const file of walk(dir))
    if (file.endsWith(".tmp") || file.endsWith(".lock") || file.endsWith(".break"))
      violations.push(`left behind: ${file}`);
}

const prompt = (i: number) => [{ role: "user", content: `chaos question ${i}` }];

/** `salvo run` over `items` lines, killed `kills` times, then run to completion. */
export async function chaosRun(options: ChaosOptions): Promise<ChaosResult> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "salvo-chaos-run-")));
  const sim = await startSimulator({
    seed: options.seed,
    latency: { ttftMs: 25, msPerToken: 1, jitter: 0.8 },
    output: { tokens: { min: 2, max: 12 } },
  });
  try {
    const N = options.items;
    const input = join(dir, "in.jsonl");
    const output = join(dir, "out.jsonl");
    await writeFile(
      input,
      `${Array.from({ length: N }, (_, i) =>
        JSON.stringify({
          custom_id: `item-${i}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: { model: "gpt-4o-mini", messages: prompt(i) },
        }),
      ).join("\n")}\n`,
    );
    const markers = new Map(Array.from({ length: N }, (_, i) => [expectedMarker(prompt(i)), i]));
    const durable = () => {
      const kept = new Set<number>();
      const inOutput = lines(output).length;
      for (let i = 0; i < inOutput; i++) kept.add(i);
      for (const record of lines(`${output}.journal`).slice(1))
        kept.add((JSON.parse(record) as { i: number }).i);
      return kept;
    };
    // The final write is under way once the output holds all but the last few lines.
    const finalWrite = () => lines(output).length >= N - 2;
    const args = [
      "run",
      input,
      "-o",
      output,
      "--base-url",
      sim.baseUrl,
      "--concurrency",
      String(options.concurrency),
      "--progress",
      "none",
    ];
    const loop = await killLoop(sim, options, args, durable, finalWrite);
    const { windows, violations } = loop;

    // Every line exactly once, in input order, each the answer to its own prompt.
    const text = existsSync(output) ? readFileSync(output, "utf8") : "";
    if (!text.endsWith("\n")) violations.push("the output does not end with a newline");
    const out = lines(output).map(
      (l) =>
        JSON.parse(l) as {
          custom_id: string;
          line: number;
          response: { body: { choices: Array<{ message: { content: string } }> } } | null;
        },
    );
    if (out.length !== N) violations.push(`the output has ${out.length} lines, not ${N}`);
    out.forEach((line, i) => {
      const answer = line.response?.body.choices[0]?.message.content ?? "";
      if (line.custom_id !== `item-${i}` || line.line !== i + 1)
        violations.push(`output line ${i + 1} is ${line.custom_id} (input line ${line.line})`);
      else if (!answer.startsWith(expectedMarker(prompt(i))))
        violations.push(`output line ${i + 1} is not the answer to its prompt`);
    });
    if (existsSync(`${output}.journal`)) violations.push("the journal was not removed");
    leftovers(dir, violations);

    const inFlight = account(
      sim,
      windows,
      (marker) => markers.get(marker),
      (r) => windows[r + 1]?.durable ?? new Set(),
      options.concurrency,
      violations,
    );
    const calls = sim.stats({ timeline: false }).arrivals;
    const bound = N + inFlight.reduce((a, b) => a + b, 0);
    if (calls > bound) violations.push(`${calls} calls for ${N} lines, over the bound ${bound}`);
    return {
      kills: inFlight.length,
      moments: loop.moments,
      items: N,
      calls,
      inFlightAtKills: inFlight,
      bound,
      violations,
      seed: options.seed,
    };
  } finally {
    await sim.close();
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

const PIPELINE = `name: chaos
model: gpt-4o-mini
maxTokens: 12
stages:
  - name: parts
    forEach: input.parts
    key: "{{item}}"
    prompt: "Is {{item}} covered?"
  - name: labour
    forEach: input.parts
    key: "{{item}}"
    needs: ["parts/{{item}}"]
    prompt: "Labour to fit {{item}}; the part's decision: {{deps.parts}}"
  - name: total
    after: [labour]
    prompt: "Claim total from: {{deps.labour}}"
`;

/** `salvo pipeline` over `2 * items + 1` tasks, killed `kills` times, then run to completion. */
export async function chaosPipeline(options: ChaosOptions): Promise<ChaosResult> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "salvo-chaos-pipeline-")));
  const sim = await startSimulator({
    seed: options.seed,
    latency: { ttftMs: 40, msPerToken: 2, jitter: 0.8 },
    output: { tokens: { min: 2, max: 12 } },
  });
  try {
    const parts = Array.from({ length: options.items }, (_, i) => `part-${i}`);
    const tasks = 2 * parts.length + 1;
    const file = join(dir, "chaos.yaml");
    const inputPath = join(dir, "input.json");
    const runDir = join(dir, "run");
    await writeFile(file, PIPELINE);
    await writeFile(inputPath, JSON.stringify({ parts }));
    // Tasks by index (their order in the journal's first appearance does not matter).
    const ids: string[] = [
      ...parts.map((p) => `parts/${p}`),
      ...parts.map((p) => `labour/${p}`),
      "total/total",
    ];
    const indexOf = new Map(ids.map((id, i) => [id, i]));
    const journalPath = join(runDir, "journal.jsonl");
    const journal = () =>
      lines(journalPath).map((l) => JSON.parse(l) as { task: string; value: string });
    const durable = () => new Set(journal().map((r) => indexOf.get(r.task)!));
    const args = [
      "pipeline",
      file,
      "--input",
      inputPath,
      "--run-dir",
      runDir,
      "--base-url",
      sim.baseUrl,
      "--concurrency",
      String(options.concurrency),
      "--progress",
      "none",
    ];
    // The final write (report.json, metadata.json) follows the last task's journal line.
    const finalWrite = () => lines(journalPath).length >= tasks;
    const keptValues = () => new Map(journal().map((r) => [indexOf.get(r.task)!, r.value]));
    // A task's prompt depends on its dependencies' answers: a request is for a kept task when
    // its marker starts that task's kept value (the simulator's answers start with the marker).
    const loop = await killLoop(sim, options, args, durable, finalWrite, keptValues);
    const { windows, violations } = loop;
    const finalValues = keptValues();
    const records = journal();
    if (records.length !== tasks || new Set(records.map((r) => r.task)).size !== tasks)
      violations.push(`the journal has ${records.length} records for ${tasks} tasks`);
    const report = JSON.parse(readFileSync(join(runDir, "report.json"), "utf8")) as {
      status: string;
      tasks: { succeeded: number };
    };
    if (report.status !== "succeeded" || report.tasks.succeeded !== tasks)
      violations.push(`report.json: ${report.status}, ${report.tasks.succeeded} of ${tasks}`);
    for (const [id, i] of indexOf) {
      const [stage, key] = id.split("/");
      const output = JSON.parse(
        readFileSync(join(runDir, "outputs", stage!, `${key}.json`), "utf8"),
      ) as { status: string; value: string };
      if (output.status !== "succeeded" || output.value !== finalValues.get(i))
        violations.push(`outputs/${id}.json does not hold the task's kept answer`);
    }
    leftovers(dir, violations);

    // The simulator's answer is a function of the prompt, so a task asked again with the same
    // dependencies' answers gets an answer that starts with the same marker.
    const itemOf = (marker: string, run: RunWindow): number | undefined => {
      for (const [i, value] of run.values ?? []) if (value.startsWith(marker)) return i;
      for (const [i, value] of finalValues) if (value.startsWith(marker)) return i;
      return undefined;
    };
    const inFlight = account(
      sim,
      windows,
      itemOf,
      (r) => windows[r + 1]?.durable ?? new Set(),
      options.concurrency,
      violations,
    );
    const calls = sim.stats({ timeline: false }).arrivals;
    const bound = tasks + inFlight.reduce((a, b) => a + b, 0);
    if (calls > bound)
      violations.push(`${calls} calls for ${tasks} tasks, over the bound ${bound}`);
    return {
      kills: inFlight.length,
      moments: loop.moments,
      items: tasks,
      calls,
      inFlightAtKills: inFlight,
      bound,
      violations,
      seed: options.seed,
    };
  } finally {
    await sim.close();
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

function print(name: string, r: ChaosResult): void {
  const moments = Object.entries(r.moments)
    .map(([m, n]) => `${n} ${m}`)
    .join(", ");
  console.log(
    `${name}: ${r.kills} kills (${moments}), ${r.items} items, ${r.calls} calls, bound ${r.bound} (in flight at the kills: ${r.inFlightAtKills.join(" ")}), seed ${r.seed}: ${r.violations.length === 0 ? "every promise held" : `${r.violations.length} VIOLATIONS`}`,
  );
  for (const v of r.violations.slice(0, 20)) console.log(`  ${v}`);
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { execFileSync } = await import("node:child_process");
  const { values } = parseArgs({
    options: {
      lines: { type: "string", default: "2000" },
      kills: { type: "string", default: "25" },
      tasks: { type: "string", default: "60" },
      "pipeline-kills": { type: "string", default: "15" },
      seed: { type: "string", default: String(Date.now() % 1_000_000) },
    },
  });
  // bin/salvo.js runs the compiled CLI: build it from the sources first, never test it stale.
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    cwd: new URL("../", import.meta.url).pathname,
    stdio: "inherit",
  });
  const seed = Number(values.seed);
  const run = await chaosRun({
    items: Number(values.lines),
    kills: Number(values.kills),
    concurrency: 16,
    seed,
  });
  print("salvo run", run);
  const pipeline = await chaosPipeline({
    items: Number(values.tasks),
    kills: Number(values["pipeline-kills"]),
    concurrency: 6,
    seed,
  });
  print("salvo pipeline", pipeline);
  process.exitCode = run.violations.length + pipeline.violations.length === 0 ? 0 : 1;
}
