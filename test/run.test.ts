// `salvo run` end to end, over HTTP against the simulator, asserting on the simulator's own
// statistics as well as on the output file: order and mapping, limits, faults, bad input, each
// input shape and provider, Ctrl-C and kill -9 with resume.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { expectedMarker, type SimConfigInput, type SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const FAKE_KEY = "sk-test-run-e2e-not-a-real-key";
const ws = useWorkspace("salvo-run-");

const prompt = (i: number) => `Assess line item ${i}: brake pads, 2 units`;

function openAiBatch(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `item-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: 20,
        messages: [{ role: "user", content: prompt(i) }],
      },
    }),
  ).join("\n");
}

function simulator(config: SimConfigInput): Promise<SimHandle> {
  return ws.simulator({
    latency: { ttftMs: 10, msPerToken: 0 },
    output: { tokens: 8 },
    ...config,
  });
}

/** `salvo run INPUT -o OUTPUT` against the simulator, quietly, with `extra` flags. */
function runArgs(input: string, output: string, s: SimHandle, ...extra: string[]): string[] {
  return ["run", input, "-o", output, "--base-url", s.baseUrl, "--progress", "none", ...extra];
}

type Run = { code: number; out: string; err: string };
async function salvo(
  args: string[],
  env: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Run> {
  const io = memoryIo({ OPENAI_API_KEY: FAKE_KEY, ANTHROPIC_API_KEY: FAKE_KEY, ...env }, signal);
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

type Line = {
  custom_id: string;
  line: number;
  response: { status_code: number; body: Record<string, unknown> } | null;
  error: { code: string; message: string; status?: number } | null;
  attempts: number;
};
async function outputLines(path: string): Promise<Line[]> {
  const text = await readFile(path, "utf8");
  return text
    .trimEnd()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}
const openAiText = (line: Line) =>
  (line.response?.body.choices as Array<{ message: { content: string } }> | undefined)?.[0]?.message
    .content ?? "";

function expectMapped(lines: Line[], n: number) {
  expect(lines).toHaveLength(n);
  lines.forEach((line, i) => {
    expect(line.custom_id).toBe(`item-${i}`);
    expect(line.line).toBe(i + 1);
    if (line.response)
      expect(
        openAiText(line).startsWith(expectedMarker([{ role: "user", content: prompt(i) }])),
      ).toBe(true);
  });
}

describe("salvo run", () => {
  it("every answer with its item, in order; slots and rate limits never exceeded; zero 429s when the limits match", async () => {
    const s = await simulator({ capacity: { slots: 4 }, limits: { rpm: 3000, tpm: 300_000 } });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(80));
    const output = join(ws.dir, "out.jsonl");
    const report = join(ws.dir, "report.json");
    const run = await salvo(
      runArgs(
        input,
        output,
        s,
        "--concurrency",
        "4",
        "--rpm",
        "3000",
        "--tpm",
        "300000",
        "--report",
        report,
      ),
    );
    expect(run.code, run.err).toBe(0);
    expectMapped(await outputLines(output), 80);
    const stats = s.stats();
    expect(stats.byStatus["429"] ?? 0).toBe(0);
    expect(stats.maxInService).toBeLessThanOrEqual(4);
    expect(stats.completions).toBe(80);
    expect(run.out).toContain("80 succeeded, 0 failed");
    const json = JSON.parse(await readFile(report, "utf8"));
    expect(json.run.succeeded).toBe(80);
    expect(json.run.bound.binding).toBeTypeOf("string");
    expect(existsSync(`${output}.journal`)).toBe(false);
  });

  it("a fault storm (20% mixed faults, hangs and resets included): every item accounted for, the run ends", async () => {
    const s = await simulator({
      seed: 3,
      faults: { p500: 0.05, p503: 0.05, pReset: 0.04, pHang: 0.03, pMalformed: 0.03 },
    });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(100));
    const output = join(ws.dir, "out.jsonl");
    const run = await salvo(runArgs(input, output, s, "--timeout", "300ms", "--max-attempts", "8"));
    expect([0, 1]).toContain(run.code);
    const lines = await outputLines(output);
    expectMapped(lines, 100);
    for (const line of lines) expect((line.response === null) !== (line.error === null)).toBe(true);
    expect(lines.filter((l) => l.response).length).toBeGreaterThanOrEqual(95);
    const stats = s.stats();
    expect(stats.byFault.hang + stats.byFault.reset).toBeGreaterThan(0);
    expect(stats.inService).toBe(0);
  });

  it("bad input lines get an error line at their position naming file:line; the rest run", async () => {
    const s = await simulator({});
    const input = join(ws.dir, "mixed.jsonl");
    const good = openAiBatch(3).split("\n");
    await writeFile(
      input,
      [
        good[0],
        '{"custom_id": "broken", "method": "POST",',
        good[2],
        JSON.stringify({
          custom_id: "empty",
          method: "POST",
          url: "/v1/chat/completions",
          body: { model: "m", messages: [] },
        }),
      ].join("\n"),
    );
    const output = join(ws.dir, "out.jsonl");
    const run = await salvo(runArgs(input, output, s));
    expect(run.code).toBe(1);
    const lines = await outputLines(output);
    expect(lines.map((l) => l.error?.code ?? "ok")).toEqual([
      "ok",
      "SALVO_INPUT_INVALID",
      "ok",
      "SALVO_INPUT_INVALID",
    ]);
    expect(lines[1]?.error?.message).toContain(`${input}:2`);
    expect(lines[3]?.error?.message).toMatch(/:4: .*messages/);
    expect(s.stats().arrivals).toBe(2);
  });

  it("--strict and duplicate custom_ids stop before any call (exit 2)", async () => {
    const s = await simulator({});
    const input = join(ws.dir, "in.jsonl");
    const output = join(ws.dir, "out.jsonl");
    await writeFile(input, `${openAiBatch(2)}\nnot json\n`);
    const strict = await salvo(runArgs(input, output, s, "--strict"));
    expect(strict.code).toBe(2);
    expect(strict.err).toContain(`${input}:3`);
    const dup = join(ws.dir, "dup.jsonl");
    await writeFile(dup, `${openAiBatch(2)}\n${openAiBatch(1)}\n`);
    const duplicates = await salvo([
      "run",
      dup,
      "-o",
      join(ws.dir, "dup-out.jsonl"),
      "--base-url",
      s.baseUrl,
      "--progress",
      "none",
    ]);
    expect(duplicates.code).toBe(2);
    expect(duplicates.err).toMatch(/dup\.jsonl:3: custom_id "item-0" already used at line 1/);
    expect(s.stats().arrivals).toBe(0);
  });

  it("reads bare request bodies with metadata (the cookbook format)", async () => {
    const s = await simulator({});
    const input = join(ws.dir, "bodies.jsonl");
    await writeFile(
      input,
      Array.from({ length: 5 }, (_, i) =>
        JSON.stringify({
          messages: [{ role: "user", content: prompt(i) }],
          metadata: { custom_id: `item-${i}` },
        }),
      ).join("\n"),
    );
    const output = join(ws.dir, "out.jsonl");
    const run = await salvo(runArgs(input, output, s, "--model", "gpt-4o-mini"));
    expect(run.code, run.err).toBe(0);
    expectMapped(await outputLines(output), 5);
  });

  it("Anthropic batch lines go to the Anthropic provider, with ITPM/OTPM limits", async () => {
    const s = await simulator({ limits: { rpm: 3000, itpm: 100_000, otpm: 20_000 } });
    const input = join(ws.dir, "anthropic.jsonl");
    await writeFile(
      input,
      Array.from({ length: 20 }, (_, i) =>
        JSON.stringify({
          custom_id: `item-${i}`,
          params: {
            model: "claude-haiku-4-5",
            max_tokens: 16,
            messages: [{ role: "user", content: prompt(i) }],
          },
        }),
      ).join("\n"),
    );
    const output = join(ws.dir, "out.jsonl");
    const run = await salvo(
      [
        "run",
        input,
        "-o",
        output,
        "--rpm",
        "3000",
        "--itpm",
        "100000",
        "--otpm",
        "20000",
        "--progress",
        "none",
      ],
      { ANTHROPIC_BASE_URL: s.origin },
    );
    expect(run.code, run.err).toBe(0);
    const lines = await outputLines(output);
    lines.forEach((line, i) => {
      const text =
        (line.response?.body.content as Array<{ text: string }> | undefined)?.[0]?.text ?? "";
      expect(text.startsWith(expectedMarker([{ role: "user", content: prompt(i) }]))).toBe(true);
    });
    expect(s.stats().byStatus["429"] ?? 0, JSON.stringify(s.stats({ timeline: false }))).toBe(0);
  });

  it("a missing API key is a usage error naming the variable, never a value", async () => {
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(1));
    const run = await salvo(
      ["run", input, "-o", join(ws.dir, "o.jsonl"), "--api-key-env", "MY_KEY"],
      {
        OPENAI_API_KEY: "",
      },
    );
    expect(run.code).toBe(2);
    expect(run.err).toContain("MY_KEY");
  });

  it("Ctrl-C: stops admitting, lets calls in flight finish, saves; the rerun pays for nothing twice", async () => {
    const s = await simulator({ latency: { ttftMs: 40 } });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(120));
    const output = join(ws.dir, "out.jsonl");
    const args = runArgs(input, output, s, "--concurrency", "6");
    const interrupt = new AbortController();
    const stop = setTimeout(() => interrupt.abort(new Error("SIGINT")), 250);
    const first = await salvo(args, {}, interrupt.signal);
    clearTimeout(stop);
    expect(first.code).toBe(130);
    expect(first.err).toContain("run the same command again to resume");
    const partial = (await outputLines(output)).length;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(120);
    const second = await salvo(args);
    expect(second.code, second.err).toBe(0);
    expectMapped(await outputLines(output), 120);
    // Calls in flight at Ctrl-C finished and were saved; queued ones never started: no call twice.
    expect(s.stats().completions).toBe(120);
    expect(s.stats().arrivals).toBe(120);
  });

  it("kill -9 mid-run, then rerun: every line once, in order; only calls in flight are paid twice", async () => {
    const s = await simulator({ latency: { ttftMs: 30 } });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(200));
    const output = join(ws.dir, "out.jsonl");
    const args = ["bin/salvo.js", ...runArgs(input, output, s, "--concurrency", "8")];
    const env = { ...process.env, OPENAI_API_KEY: FAKE_KEY };
    const child: ChildProcess = spawn(process.execPath, args, { env, stdio: "ignore" });
    await expect
      .poll(() => s.stats().completions, { timeout: 10_000, interval: 10 })
      .toBeGreaterThan(40);
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    const beforeRerun = s.stats().completions;
    expect(beforeRerun).toBeLessThan(200);
    const rerun = spawn(process.execPath, args, { env, stdio: "ignore" });
    const code = await new Promise((resolve) => rerun.once("exit", resolve));
    expect(code).toBe(0);
    expectMapped(await outputLines(output), 200);
    expect(existsSync(`${output}.journal`)).toBe(false);
    // At most the 8 calls in flight at the kill were made twice: an answer is journaled before
    // its slot is freed, so answers that arrived but were not yet written (a slow disk, a busy
    // machine) are among those 8 and never more.
    expect(s.stats().completions).toBeLessThanOrEqual(200 + 8);
  });
});

describe("salvo run --audit", () => {
  it("writes a hash-chained call log, one record per attempt, that salvo verify accepts; no key in any file", async () => {
    const s = await simulator({ seed: 5, faults: { p500: 0.2 } });
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, openAiBatch(30));
    const output = join(ws.dir, "out.jsonl");
    const log = join(ws.dir, "calls.log");
    const report = join(ws.dir, "report.json");
    const run = await salvo(runArgs(input, output, s, "--audit", log, "--report", report));
    expect(run.code, run.err).toBe(0);
    const records = (await readFile(log, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const calls = records.filter((r) => r.type === "llm_call");
    expect(calls).toHaveLength(s.stats().arrivals);
    expect(calls.filter((r) => r.status === "ok")).toHaveLength(30);
    expect(calls.some((r) => r.attempt > 1)).toBe(true);
    const verify = await salvo(["verify", log]);
    expect(verify.code, verify.out + verify.err).toBe(0);
    for (const file of [output, log, report]) {
      expect(await readFile(file, "utf8")).not.toContain(FAKE_KEY);
    }
  });
});
