// `salvo run --dry-run`: nothing is called, and the estimate is compared with what the real run
// then uses, on the demo batch and on a resumed run that learns from its own answers.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const FAKE_KEY = "sk-test-dry-run-not-a-real-key";
const ws = useWorkspace("salvo-dry-");

async function salvo(args: string[]) {
  const io = memoryIo({ OPENAI_API_KEY: FAKE_KEY });
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}
const json = async (path: string) => JSON.parse(await readFile(path, "utf8"));
const within = (estimate: number, real: number) => Math.abs(estimate - real) / real;

describe("salvo run --dry-run", () => {
  it("on the demo batch: the estimate is within 10% of the tokens the real run uses", async () => {
    // The demo itself: writes claims.jsonl, runs it on the simulator, writes report.json.
    const demo = await salvo(["demo", "--dir", ws.dir, "--progress", "none"]);
    expect(demo.code).toBe(0);
    const real = (await json(join(ws.dir, "report.json"))).run;

    // The same batch and settings as the demo, dry: the simulator is not even started.
    const dry = await salvo([
      "run",
      join(ws.dir, "claims.jsonl"),
      "-o",
      join(ws.dir, "dry-output.jsonl"),
      "--sim",
      "claims-demo",
      "--concurrency",
      "8",
      "--rpm",
      "1200",
      "--tpm",
      "200000",
      "--dry-run",
      "--report",
      join(ws.dir, "dry.json"),
    ]);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("nothing was called");
    const estimate = (await json(join(ws.dir, "dry.json"))).estimate;
    expect(estimate.calls).toBe(300);
    expect(estimate.expectedSource).toContain("simulator's answer lengths");

    const realTotal = real.tokens.input + real.tokens.output;
    const expectedTotal = estimate.tokens.input + estimate.tokens.outputExpected;
    if (process.env.SALVO_MEASURE)
      console.log({ real: real.tokens, estimate: estimate.tokens, bound: estimate.cost });
    expect(within(estimate.tokens.input, real.tokens.input)).toBeLessThan(0.02);
    expect(within(expectedTotal, realTotal)).toBeLessThan(0.1);
    // The bound is a bound: every answer at max_tokens.
    expect(estimate.tokens.input + estimate.tokens.outputBound).toBeGreaterThan(realTotal);
    expect(real.cost.usd).toBeLessThanOrEqual(estimate.cost.bound);
    expect(within(estimate.cost.expected, real.cost.usd)).toBeLessThan(0.1);
    // No output was written by the dry run.
    await expect(readFile(join(ws.dir, "dry-output.jsonl"))).rejects.toMatchObject({
      code: "ENOENT",
    });
  }, 90_000);

  it("makes zero HTTP calls; after a budget stop it learns the answer lengths from the answers so far", async () => {
    const sim = await ws.simulator({
      latency: { ttftMs: 10, msPerToken: 0 },
      output: { tokens: { min: 10, max: 50 } },
    });
    const input = join(ws.dir, "in.jsonl");
    const output = join(ws.dir, "out.jsonl");
    await writeFile(
      input,
      Array.from({ length: 400 }, (_, i) =>
        JSON.stringify({
          custom_id: `c-${i}`,
          method: "POST",
          url: "/v1/chat/completions",
          body: {
            model: "gpt-4o-mini",
            max_tokens: 80,
            messages: [{ role: "user", content: `Summarise transcript segment ${i} in one line` }],
          },
        }),
      ).join("\n"),
    );
    const common = [
      "run",
      input,
      "-o",
      output,
      "--base-url",
      sim.baseUrl,
      "--progress",
      "none",
    ].concat(["--concurrency", "16"]);

    const fresh = await salvo([...common, "--dry-run", "--report", join(ws.dir, "d0.json")]);
    expect(fresh.code).toBe(0);
    expect(sim.stats().arrivals).toBe(0);
    // Nothing known about answer lengths yet: the bound only, said so.
    expect((await json(join(ws.dir, "d0.json"))).estimate.tokens.outputExpected).toBeUndefined();
    expect(fresh.out).toContain("expected unknown");

    // About half the batch fits: what it learns from ~200 answers predicts the other ~200.
    const stopped = await salvo([...common, "--max-tokens-total", "8000"]);
    expect(stopped.code).toBe(3);
    sim.reset();
    const dry = await salvo([...common, "--dry-run", "--report", join(ws.dir, "d1.json")]);
    expect(dry.code).toBe(0);
    expect(sim.stats().arrivals).toBe(0);
    const d1 = await json(join(ws.dir, "d1.json"));
    expect(d1.items.done + d1.items.calls).toBe(400);
    expect(d1.estimate.expectedSource).toContain("answers already in the output");

    const rest = await salvo([...common, "--report", join(ws.dir, "r.json")]);
    expect(rest.code).toBe(0);
    expect(sim.stats().arrivals).toBe(d1.items.calls);
    const real = (await json(join(ws.dir, "r.json"))).run.tokens;
    const expectedTotal = d1.estimate.tokens.input + d1.estimate.tokens.outputExpected;
    if (process.env.SALVO_MEASURE) console.log({ real, estimate: d1.estimate.tokens });
    expect(within(expectedTotal, real.input + real.output)).toBeLessThan(0.1);
  });
});
