// `salvo sim` and `salvo demo` through the CLI entry point, with an in-memory io.
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { loadScenario } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";

async function waitFor(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("salvo sim", () => {
  it("--help lists every option with its default", async () => {
    const io = memoryIo();
    expect(await runCli(["sim", "--help"], io)).toBe(0);
    for (const option of [
      "--port <n>",
      "--host <host>",
      "--scenario <file>",
      "--preset <name>",
      "--seed <n>",
      "--slots <n>",
      "--queue <n>",
      "--rpm <n>",
      "--tpm <n>",
      "--itpm <n>",
      "--otpm <n>",
      "--ttft-ms <ms>",
      "--ms-per-token <ms>",
      "--output-tokens <n|min-max>",
      "--p500 <p>",
      "--p503 <p>",
      "--p-reset <p>",
      "--p-hang <p>",
      "--quota",
    ]) {
      expect(io.out).toContain(option);
    }
    expect(io.out).toContain("(default: 0)");
    expect(io.out).toContain("(default: unlimited)");
  });

  it("a bad flag value exits 2 naming the flag", async () => {
    for (const [args, pattern] of [
      [["--rpm", "0"], /command line: --rpm: expected a number > 0, got 0/],
      [["--slots", "many"], /--slots: expected a number, got "many"/],
      [["--p500", "1.5"], /--p500: expected a number <= 1, got 1\.5/],
      [["--output-tokens", "9-3"], /--output-tokens: expected min <= max, got "9-3"/],
      [["--preset", "nope"], /--preset: expected one of .*demo.*got "nope"/],
    ] as const) {
      const io = memoryIo();
      expect(await runCli(["sim", ...args], io)).toBe(2);
      expect(io.err).toMatch(pattern);
      expect(io.err).toContain("SALVO_CONFIG_INVALID");
    }
  });

  it("a bad scenario value exits 2 naming the file, line and field", async () => {
    const dir = await mkdtemp(join(tmpdir(), "salvo-sim-cli-"));
    const file = join(dir, "bad.yaml");
    await writeFile(file, "seed: 3\ncapacity:\n  slots: 4\nlimits:\n  rpm: -10\n");
    const io = memoryIo();
    expect(await runCli(["sim", "--scenario", file], io)).toBe(2);
    expect(io.err).toContain(`${file}:5: limits.rpm: expected a number > 0, got -10`);
    const typo = join(dir, "typo.yaml");
    await writeFile(typo, "capacity:\n  slot: 4\n");
    const io2 = memoryIo();
    expect(await runCli(["sim", "--scenario", typo], io2)).toBe(2);
    expect(io2.err).toContain(
      `${typo}:2: capacity.slot: expected a known field (one of slots, queue, rejectAbove, retryAfterMs)`,
    );
  });

  it("serves until the signal aborts, then prints a one-line summary", async () => {
    const stop = new AbortController();
    const io = memoryIo({}, stop.signal);
    const exit = runCli(["sim", "--preset", "slots-4", "--slots", "2", "--ttft-ms", "1"], io);
    await waitFor(() => io.out.includes("ANTHROPIC_BASE_URL="));
    expect(io.out).toContain("slots 2");
    const baseUrl = /^OPENAI_BASE_URL=(\S+)$/m.exec(io.out)?.[1];
    expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const r = await fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(r.status).toBe(200);
    await r.text();
    stop.abort();
    expect(await exit).toBe(0);
    expect(io.out).toMatch(
      /salvo sim: stopped\. 1 requests, 1 answered, 0 rate-limited, 0 faults; status 200x1; peak 1 in service/,
    );
  });

  it("every checked-in scenario is valid", async () => {
    const files = (await readdir("scenarios")).filter((f) => f.endsWith(".yaml"));
    expect(files).toEqual(
      expect.arrayContaining([
        "demo.yaml",
        "slots-4.yaml",
        "rpm-600.yaml",
        "fault-storm.yaml",
        "anthropic-limits.yaml",
      ]),
    );
    for (const file of files)
      await expect(loadScenario(join("scenarios", file))).resolves.toBeTypeOf("object");
  });
});

describe("salvo demo", () => {
  it("runs a sample claims batch against the in-process simulator and prints the summary", async () => {
    const dir = await mkdtemp(join(tmpdir(), "salvo-demo-"));
    try {
      const io = memoryIo();
      expect(await runCli(["demo", "--items", "30", "--dir", dir, "--progress", "none"], io)).toBe(
        0,
      );
      expect(io.out).toContain(
        "30 claim line items against a simulated provider at http://127.0.0.1:",
      );
      expect(io.out).toContain("30 succeeded, 0 failed");
      expect(io.out).toMatch(/one at a time these calls would have taken about/);
      const lines = (await readFile(join(dir, "results.jsonl"), "utf8")).trim().split("\n");
      expect(lines).toHaveLength(30);
      expect(JSON.parse(lines[0] ?? "{}").custom_id).toBe("claim-1000-line-1");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects a bad --items with exit 2", async () => {
    const io = memoryIo();
    expect(await runCli(["demo", "--items", "0"], io)).toBe(2);
    expect(io.err).toContain("--items: expected a whole number from 1 to 100000");
  });
});
