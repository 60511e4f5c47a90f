// Budgets end to end: `salvo run --max-cost` / `--max-tokens-total` against the simulator over
// HTTP. The spend is recomputed from the simulator's own record of the tokens it served, not
// from Salvo's accounting, and compared with the limit.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT_BUDGET_EXCEEDED } from "../src/cli/commands/run.ts";
import { runCli } from "../src/cli/main.ts";
import { Pricing } from "../src/cost/pricing.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const FAKE_KEY = "sk-test-budget-not-a-real-key";
const MAX_TOKENS = 40;
const ws = useWorkspace("salvo-budget-");

const body = (i: number) => ({
  model: "gpt-4o-mini",
  max_tokens: MAX_TOKENS,
  messages: [{ role: "user", content: `Assess claim line ${i}: rear bumper cover, 1 unit` }],
});

async function setup(n: number): Promise<{ s: SimHandle; input: string; output: string }> {
  const sim = await ws.simulator({
    latency: { ttftMs: 20, msPerToken: 0 },
    output: { tokens: { min: 5, max: MAX_TOKENS } },
  });
  const input = join(ws.dir, "in.jsonl");
  await writeFile(
    input,
    Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        custom_id: `line-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: body(i),
      }),
    ).join("\n"),
  );
  return { s: sim, input, output: join(ws.dir, "out.jsonl") };
}

async function run(s: SimHandle, input: string, output: string, extra: string[]) {
  const io = memoryIo({ OPENAI_API_KEY: FAKE_KEY });
  const code = await runCli(
    ["run", input, "-o", output, "--base-url", s.baseUrl, "--concurrency", "4"]
      .concat(["--progress", "none", "--report", join(ws.dir, "report.json")])
      .concat(extra),
    io,
  );
  return { code, out: io.out, err: io.err };
}

type Line = {
  custom_id: string;
  error: { code: string } | null;
  response: { body: unknown } | null;
  cost_usd?: number;
};
const lines = async (path: string) =>
  (await readFile(path, "utf8"))
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);

/** What the simulator served, priced: the real spend, from the server's side. */
function served(s: SimHandle): { usd: number; tokens: number; answers: number } {
  const pricing = new Pricing();
  let usd = 0;
  let tokens = 0;
  let answers = 0;
  for (const entry of s.stats().timeline) {
    if (entry.status !== 200) continue;
    answers += 1;
    tokens += entry.promptTokens + entry.outputTokens;
    usd += pricing.cost("gpt-4o-mini", {
      inputTokens: entry.promptTokens,
      outputTokens: entry.outputTokens,
    }).usd!;
  }
  return { usd, tokens, answers };
}

/** One call's upper bound, as admission estimates it (prompt by tokenizer + max_tokens). */
function oneCallBound(i: number): { usd: number; tokens: number } {
  const estimate = new OpenAIProvider({ apiKey: FAKE_KEY }).estimate({
    path: "/chat/completions",
    body: body(i),
  });
  return {
    usd: new Pricing().bound("gpt-4o-mini", estimate)!,
    tokens: estimate.inputTokens + estimate.outputTokens,
  };
}

describe("salvo run --max-cost", () => {
  it("a rerun refuses answers kept past a budget stop when the input has changed since", async () => {
    const { s, input, output } = await setup(3);
    expect((await run(s, input, output, [])).code).toBe(0);
    // As a budget stop leaves it: item 1 refused, item 2 answered after it.
    const out = (await readFile(output, "utf8")).trimEnd().split("\n");
    const refused = JSON.parse(out[1]!) as Record<string, unknown>;
    refused.response = null;
    refused.error = { code: "SALVO_BUDGET_EXCEEDED", message: "over budget" };
    out[1] = JSON.stringify(refused);
    await writeFile(output, `${out.join("\n")}\n`);
    // The user then edits the input: item 2 is another line now.
    const edited = (await readFile(input, "utf8")).replace(
      '"custom_id":"line-2"',
      '"custom_id":"line-2b"',
    );
    await writeFile(input, edited);
    const rerun = await run(s, input, output, []);
    expect(rerun.code).toBe(2);
    expect(rerun.err).toMatch(
      /its journal answers custom_id "line-2" at input line 3 for item 2, but item 2 of .* is custom_id "line-2b" at line 3\. Rerun with --fresh.*\[SALVO_RESUME_REFUSED\]/,
    );
  });

  it("stops within one call's cost of the limit, marks the rest, and a rerun with more budget runs exactly those", async () => {
    const n = 60;
    const { s, input, output } = await setup(n);
    const limit = 0.0005;
    const first = await run(s, input, output, ["--max-cost", String(limit)]);
    expect(first.code).toBe(EXIT_BUDGET_EXCEEDED);
    expect(first.err).toContain("budget exhausted");

    const spent = served(s);
    expect(spent.usd).toBeLessThanOrEqual(limit);
    expect(limit - spent.usd).toBeLessThan(oneCallBound(0).usd);
    const report = JSON.parse(await readFile(join(ws.dir, "report.json"), "utf8"));
    expect(report.budget.spent.usd).toBeCloseTo(spent.usd, 12);
    expect(report.run.cost.usd).toBeCloseTo(spent.usd, 12);

    const out = await lines(output);
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `line-${i}`));
    const refused = out.filter((l) => l.error?.code === "SALVO_BUDGET_EXCEEDED");
    const answered = out.filter((l) => l.error === null);
    expect(refused.length).toBeGreaterThan(0);
    expect(answered.length + refused.length).toBe(n);
    expect(answered.length).toBe(spent.answers);
    const linesCost = answered.reduce((sum, l) => sum + (l.cost_usd ?? Number.NaN), 0);
    expect(linesCost).toBeCloseTo(spent.usd, 12);

    s.reset();
    const second = await run(s, input, output, ["--max-cost", "1"]);
    expect(second.code).toBe(0);
    expect(second.out).toContain(`${refused.length} not run before (over budget)`);
    expect(s.stats().arrivals).toBe(refused.length);
    const after = await lines(output);
    expect(after.map((l) => l.custom_id)).toEqual(out.map((l) => l.custom_id));
    expect(after.every((l) => l.error === null)).toBe(true);
    // The answers of the first run are kept as they were, not called again.
    out.forEach((line, i) => {
      if (line.error === null) expect(after[i]!.response?.body).toEqual(line.response?.body);
    });
  });

  it("--max-tokens-total stops within one call's tokens of the limit", async () => {
    const { s, input, output } = await setup(40);
    const limit = 1000;
    const result = await run(s, input, output, ["--max-tokens-total", String(limit)]);
    expect(result.code).toBe(EXIT_BUDGET_EXCEEDED);
    const spent = served(s);
    expect(spent.tokens).toBeLessThanOrEqual(limit);
    expect(limit - spent.tokens).toBeLessThan(oneCallBound(0).tokens);
  });

  it("refuses to start when a model has no price, naming the input line", async () => {
    const { s, input, output } = await setup(3);
    await writeFile(
      input,
      `${await readFile(input, "utf8")}\n${JSON.stringify({ custom_id: "x", method: "POST", url: "/v1/chat/completions", body: { ...body(9), model: "ft:gpt-4o-mini:acme::1" } })}\n`,
    );
    const result = await run(s, input, output, ["--max-cost", "1"]);
    expect(result.code).toBe(2);
    expect(result.err).toContain(`${input}:4: --max-cost`);
    expect(result.err).toContain("ft:gpt-4o-mini:acme::1");
    expect(s.stats().arrivals).toBe(0);
  });
});
