// The dry run's lower bound: never "M* 0ms" when nothing is known to compute it from.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { memoryIo } from "../../test/support/memory-io.ts";
import { useWorkspace } from "../../test/support/workspace.ts";
import { runCli } from "./main.ts";

const ws = useWorkspace("salvo-dry-bound-");

async function dry(extra: string[]) {
  const input = join(ws.dir, "in.jsonl");
  await writeFile(
    input,
    Array.from({ length: 10 }, (_, i) =>
      JSON.stringify({
        custom_id: `c-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "gpt-4o-mini",
          max_tokens: 20,
          messages: [{ role: "user", content: `q${i}` }],
        },
      }),
    ).join("\n"),
  );
  const io = memoryIo({ OPENAI_API_KEY: "sk-test-not-a-key" });
  const code = await runCli(
    ["run", input, "-o", join(ws.dir, "out.jsonl"), "--dry-run", ...extra],
    io,
  );
  return { code, out: io.out };
}

describe("salvo run --dry-run's lower bound", () => {
  it("with no latency to go by and no rate limit, M* is unknown, never 0ms", async () => {
    const { code, out } = await dry([]);
    expect(code).toBe(0);
    expect(out).not.toMatch(/M\* 0ms/);
    expect(out).toContain("lower bound M* unknown");
    expect(out).toContain("--rpm");
  });

  it("with a rate limit but no latency, M* is at least the rate term, said so", async () => {
    const { out } = await dry(["--rpm", "60", "--concurrency", "4"]);
    expect(out).toMatch(
      /lower bound M\* at least \d+(\.\d)?s \(bound by requests\) with concurrency 4, 60 requests\/min/,
    );
    expect(out).toContain("the latency per call is unknown");
  });
});
