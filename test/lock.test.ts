// Two runs on one output or one run directory, as real processes (bin/salvo.js) against the
// simulator (in this process, so its counts survive the children): the second is refused at once
// and names the first; the first's output stays whole and paid once; a run killed with SIGKILL
// leaves a lock that the next run takes over at once.
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { completeLines, startSalvo, until } from "./support/salvo-process.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-lock-", {
  latency: { ttftMs: 40, msPerToken: 0 },
  output: { tokens: 4 },
});
const env = { OPENAI_API_KEY: "sk-test-lock-not-a-real-key" };
const LINES = 200;

async function batchInput(n: number): Promise<string> {
  const input = join(ws.dir, "two.jsonl");
  await writeFile(
    input,
    `${Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        custom_id: `item-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "gpt-4o-mini", messages: [{ role: "user", content: `question ${i}` }] },
      }),
    ).join("\n")}\n`,
  );
  return input;
}

function expectWholeOutput(output: string, n: number): void {
  const lines = completeLines(output).map(
    (l) => JSON.parse(l) as { custom_id: string; line: number },
  );
  expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `item-${i}`));
  expect(readFileSync(output, "utf8").endsWith("\n")).toBe(true);
}

it("a second salvo run on the same output is refused at once, naming the first; the output is whole and paid once", async () => {
  const sim = await ws.simulator();
  const input = await batchInput(LINES);
  const output = join(ws.dir, "out.jsonl");
  const args = ["run", input, "-o", output, "--base-url", sim.baseUrl, "--concurrency", "4"];
  const first = startSalvo([...args, "--progress", "none"], env);
  await until(() => completeLines(output).length >= 5, 20_000, "the first run's output");
  // Paused (not dead) while the second starts, however slowly: it must still count as the holder.
  first.kill("SIGSTOP");
  const second = startSalvo([...args, "--progress", "none"], env);
  const refused = await second.exited;
  first.kill("SIGCONT");
  expect(refused.code, second.stderr()).toBe(2);
  expect(second.stderr()).toContain(`pid ${first.pid} on host ${hostname()}, since `);
  expect(second.stderr()).toContain("[SALVO_LOCKED]");

  const done = await first.exited;
  expect(done.code, first.stderr()).toBe(0);
  expectWholeOutput(output, LINES);
  expect(sim.stats().arrivals).toBe(LINES);
  expect(existsSync(`${output}.lock`)).toBe(false);
}, 60_000);

it("salvo run killed with SIGKILL leaves its lock behind, and the rerun takes it over at once", async () => {
  const sim = await ws.simulator();
  const input = await batchInput(LINES);
  const output = join(ws.dir, "out.jsonl");
  const args = ["run", input, "-o", output, "--base-url", sim.baseUrl, "--concurrency", "4"];
  const killed = startSalvo([...args, "--progress", "none"], env);
  await until(() => completeLines(output).length >= 10, 20_000, "the run's output");
  killed.kill("SIGKILL");
  expect((await killed.exited).signal).toBe("SIGKILL");
  expect(JSON.parse(readFileSync(`${output}.lock`, "utf8"))).toMatchObject({ pid: killed.pid });

  const rerun = startSalvo([...args, "--progress", "none"], env);
  const { code } = await rerun.exited;
  expect(code, rerun.stderr()).toBe(0);
  expectWholeOutput(output, LINES);
  expect(existsSync(`${output}.lock`)).toBe(false);
}, 60_000);

const PIPELINE = `name: locked
model: gpt-4o-mini
maxTokens: 4
stages:
  - name: parts
    forEach: input.parts
    key: "{{item}}"
    prompt: "Is {{item}} covered?"
`;

it("a second salvo pipeline on the same run directory is refused at once, naming the first; a killed one's lock is taken over", async () => {
  const sim = await ws.simulator();
  const file = join(ws.dir, "p.yaml");
  const inputPath = join(ws.dir, "input.json");
  const runDir = join(ws.dir, "run");
  await writeFile(file, PIPELINE);
  await writeFile(
    inputPath,
    JSON.stringify({ parts: Array.from({ length: 120 }, (_, i) => `p${i}`) }),
  );
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
    "2",
    "--progress",
    "none",
  ];
  const journal = join(runDir, "journal.jsonl");
  const first = startSalvo(args, env);
  await until(() => completeLines(journal).length >= 3, 20_000, "the first pipeline's journal");
  first.kill("SIGSTOP"); // paused, not dead: still the holder
  const second = startSalvo(args, env);
  const refused = await second.exited;
  expect(refused.code, second.stderr()).toBe(2);
  expect(second.stderr()).toContain(`pid ${first.pid} on host ${hostname()}, since `);

  first.kill("SIGKILL");
  await first.exited;
  await until(
    () => sim.stats().inService === 0 && sim.stats().queued === 0,
    10_000,
    "the killed run's calls to end",
  );
  expect(existsSync(join(runDir, "run.lock"))).toBe(true);
  const rerun = startSalvo(args, env);
  const { code } = await rerun.exited;
  expect(code, rerun.stderr()).toBe(0);
  // Every task paid once, but the (at most 2) in flight at the kill: the refused run called nothing.
  expect(completeLines(journal)).toHaveLength(120);
  expect(sim.stats().arrivals).toBeLessThanOrEqual(120 + 2);
  expect(existsSync(join(runDir, "run.lock"))).toBe(false);
}, 60_000);
