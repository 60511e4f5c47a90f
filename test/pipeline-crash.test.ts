// `kill -9` during `salvo pipeline`, then reruns: every task that had finished is reused (no
// call repeats its prompt, counted by the simulator, which runs in this process so its stats
// survive the kills), metadata.json is never torn, and the final outputs are complete and each
// is the answer to the prompt built from the final outputs of its dependencies.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { UpstreamResult } from "../src/pipeline/pipeline-definition.ts";
import { parsePipelineFile } from "../src/pipeline/pipeline-file.ts";
import type { PipelineReport } from "../src/pipeline/pipeline-report.ts";
import { buildTaskGraph } from "../src/pipeline/task-graph.ts";
import {
  expectedMarker,
  type SimHandle,
  type SimMessage,
  startSimulator,
} from "../src/sim/index.ts";

const BIN = new URL("../bin/salvo.js", import.meta.url).pathname;
const FAKE_KEY = "sk-test-pipeline-crash-not-a-real-key";
const PARTS = Array.from({ length: 20 }, (_, i) => `part-${i}`);
const TASKS = PARTS.length * 2 + 1;
const CONCURRENCY = 4;
const PIPELINE = `name: crash
model: gpt-4o-mini
maxTokens: 40
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

let dir: string;
let sim: SimHandle;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-pipeline-crash-"));
  sim = await startSimulator({
    seed: 4,
    latency: { ttftMs: 200, msPerToken: 3, jitter: 0.3 },
    output: { tokens: { min: 10, max: 30 } },
  });
});
afterEach(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

function start(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, OPENAI_API_KEY: FAKE_KEY },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d;
  });
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stderr: () => stderr };
}

/** Journaled tasks (complete lines only) and their values. */
function journal(runDir: string): Map<string, string> {
  const path = join(runDir, "journal.jsonl");
  const done = new Map<string, string>();
  if (!existsSync(path)) return done;
  const lines = readFileSync(path, "utf8").split("\n");
  lines.pop(); // a torn last line, or ""
  for (const line of lines) {
    const record = JSON.parse(line) as { task: string; value: string };
    done.set(record.task, record.value);
  }
  return done;
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

it("kill -9 mid-run, twice, then a rerun: finished tasks are reused, none is called again, outputs are complete and correct", async () => {
  const file = join(dir, "crash.yaml");
  const inputPath = join(dir, "input.json");
  const runDir = join(dir, "run");
  await writeFile(file, PIPELINE);
  await writeFile(inputPath, JSON.stringify({ parts: PARTS }));
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
    String(CONCURRENCY),
    "--progress",
    "none",
  ];

  let lastRequest = 0;
  const newRequests = () => {
    const timeline = sim.stats().timeline.filter((e) => e.id > lastRequest);
    lastRequest = Math.max(lastRequest, ...timeline.map((e) => e.id));
    return timeline;
  };
  const journaledAtKill: number[] = [];
  for (const killAt of [6, 18]) {
    const before = journal(runDir);
    const run = start(args);
    try {
      await until(() => journal(runDir).size >= killAt, 20_000);
    } finally {
      run.child.kill("SIGKILL");
    }
    const { signal } = await run.exited;
    expect(signal, run.stderr()).toBe("SIGKILL");
    // Let the requests of the killed process end at the simulator.
    await until(() => sim.stats().inService === 0 && sim.stats().queued === 0, 5_000);
    // metadata.json is whole after a kill (written by rename, never in place).
    const metadata = JSON.parse(readFileSync(join(runDir, "metadata.json"), "utf8"));
    expect(metadata.status).toBe("running");
    // No task journaled before this run was asked again in it.
    const reasked = newRequests().filter((e) =>
      [...before.values()].some((value) => value.startsWith(`${e.marker} `) || value === e.marker),
    );
    expect(reasked).toEqual([]);
    journaledAtKill.push(journal(runDir).size);
  }

  const before = journal(runDir);
  expect(before.size).toBeLessThan(TASKS);
  const last = start(args);
  const { code } = await last.exited;
  expect(code, last.stderr()).toBe(0);
  const rerun = newRequests();
  // The rerun called exactly the tasks not journaled, once each (the simulator injects no faults).
  expect(rerun).toHaveLength(TASKS - before.size);
  for (const e of rerun)
    expect([...before.values()].some((value) => value.startsWith(e.marker ?? "?"))).toBe(false);
  const report = JSON.parse(readFileSync(join(runDir, "report.json"), "utf8")) as PipelineReport;
  expect(report.status).toBe("succeeded");
  expect(report.tasks).toMatchObject({ total: TASKS, succeeded: TASKS, reused: before.size });
  expect(last.stderr()).toContain(`(${before.size} reused from the run directory)`);

  // Every output is the answer to the prompt built from its dependencies' final outputs.
  const pipeline = parsePipelineFile(PIPELINE, file);
  const graph = buildTaskGraph<unknown>(pipeline, { parts: PARTS });
  const outputs = new Map<string, string>();
  for (const node of graph.order) {
    const path = join(runDir, "outputs", node.stage, `${node.key}.json`);
    const output = JSON.parse(readFileSync(path, "utf8")) as { status: string; value: string };
    expect(output.status).toBe("succeeded");
    const deps = node.deps.map(
      (id): UpstreamResult => ({
        task: id,
        stage: id.split("/")[0]!,
        key: id.split("/")[1]!,
        ok: true,
        value: outputs.get(id),
        text: outputs.get(id)!,
        fallback: false,
        errorCode: undefined,
      }),
    );
    const request = node.settings.request!({
      input: { parts: PARTS },
      task: node.id,
      stage: node.stage,
      key: node.key,
      item: node.item,
      deps,
      partial: false,
      missing: [],
      maxTokens: 40,
      signal: new AbortController().signal,
      context: "",
    });
    const marker = expectedMarker(request.body.messages as SimMessage[]);
    expect(output.value.startsWith(marker), node.id).toBe(true);
    outputs.set(node.id, output.value);
  }
  console.log(
    `pipeline crash test: ${TASKS} tasks; journaled at the kills: ${journaledAtKill.join(", ")}; the rerun made ${rerun.length} calls and reused ${before.size}; ${sim.stats().arrivals} requests in all`,
  );
}, 60_000);
