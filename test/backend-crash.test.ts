// `salvo run --backend batch` killed with SIGKILL (a real process running bin/salvo.js) while it
// polls the provider's batch, then run again: the rerun re-attaches to the batch the first run
// submitted instead of submitting (and paying for) it again, and writes the complete ordered
// output. The simulator counts batch submissions.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { expectedMarker } from "../src/sim/index.ts";
import { chatLines } from "./support/chat-lines.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-backend-crash-");
const bin = fileURLToPath(new URL("../bin/salvo.js", import.meta.url));
const KEY = "sk-backend-crash-test-not-a-key";

function salvo(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
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

const question = (i: number) => `Is claim line ${i} covered by the policy?`;

it("kill -9 while polling, then rerun: re-attached to the submitted batch, not resubmitted", async () => {
  const sim = await ws.simulator({ batch: { completionMs: 3000 } });
  const N = 40;
  const input = join(ws.dir, "in.jsonl");
  await writeFile(input, chatLines(N, { tag: "claim", maxTokens: 20, content: question }));
  const output = join(ws.dir, "out.jsonl");
  const args = ["run", input, "-o", output, "--backend", "batch", "--base-url", sim.baseUrl];
  const env = { OPENAI_API_KEY: KEY };

  const first = salvo([...args, "--progress", "none"], env);
  // Polling: the batch is submitted and recorded, and the run waits for it.
  const state = `${output}.batches.json`;
  for (;;) {
    const exited = await Promise.race([first.exited, new Promise((r) => setTimeout(r, 20))]);
    expect(exited, first.output().stderr).toBeUndefined();
    const recorded =
      existsSync(state) && (await readFile(state, "utf8")).includes('"phase":"submitted"');
    if (recorded && /batch batch_\w+ submitted: 40 requests/.test(first.output().stderr)) break;
  }
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");
  expect(sim.stats({ timeline: false }).batch.submitted.openai).toBe(1);

  const second = salvo([...args, "--progress", "none"], env);
  const { code } = await second.exited;
  const { stdout, stderr } = second.output();
  expect(code, stderr).toBe(0);
  expect(stderr).toMatch(
    /re-attached to batch batch_\w+ \(40 requests\), submitted by an earlier run/,
  );
  expect(stderr).not.toMatch(/submitted: \d+ requests/);
  expect(stdout).toMatch(/1 re-attached after a restart/);

  const stats = sim.stats({ timeline: false });
  expect(stats.batch.submitted.openai).toBe(1);
  expect(stats.batch.requests).toBe(N);
  expect(stats.completions).toBe(0); // nothing was paid for twice, in real time or in a batch
  const lines = (await readFile(output, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: N }, (_, i) => `claim-${i}`));
  lines.forEach((line, i) => {
    expect(line.batch_id).toBe(lines[0].batch_id);
    const content = line.response.body.choices[0].message.content as string;
    expect(content.startsWith(expectedMarker([{ role: "user", content: question(i) }]))).toBe(true);
  });
  for (const leftover of [".journal", ".batches.json", ".batches.jsonl"])
    expect(existsSync(`${output}${leftover}`), leftover).toBe(false);
}, 30_000);
