// One path, not two: `salvo run` is a thin edge over the library's `runBatchFile`. The same input
// through the CLI and through the library writes the same output file and the same summary.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runBatchFile } from "../src/batch/run-batch-file.ts";
import { runCli } from "../src/cli/main.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-run-library-", {
  seed: 11,
  latency: { ttftMs: 15, msPerToken: 1 },
  output: { tokens: { min: 4, max: 12 } },
  capacity: { slots: 4 },
});

const KEY = "sk-library-vs-cli-not-a-key";

function requests(n: number): string {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `q-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: 20,
        temperature: 0,
        messages: [{ role: "user", content: `question ${i}: is item ${i} covered?` }],
      },
    }),
  );
  // An invalid line and a blank one: both paths must treat them alike.
  lines.splice(5, 0, '{"custom_id": "broken", "body": ');
  return `${lines.join("\n")}\n\n`;
}

/** An output line without what differs between any two runs: timings and the server's ids. */
function stable(line: string): unknown {
  const value = JSON.parse(line);
  delete value.latency_ms;
  if (value.response) {
    delete value.response.request_id;
    delete value.response.body?.id;
    delete value.response.body?.created;
  }
  return value;
}

/** The summary without the figures that depend on timing. */
function shape(text: string): string {
  return text
    .replace(/\d+(\.\d+)?(ms|s|m)\b/g, "T")
    .replace(/\d+(\.\d+)? calls\/s/g, "R calls/s")
    .replace(/\d+\.\d+x M\*/g, "Rx M*")
    .replace(/between \d+ and \d+, ending at \d+/, "between A and B, ending at C")
    .replace(/(output|latency per call).*/g, "$1");
}

describe("salvo run and runBatchFile", () => {
  it("write identical output files and print the same summary for the same input", async () => {
    const sim = await ws.simulator();
    const input = join(ws.dir, "in.jsonl");
    await writeFile(input, requests(24));
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };

    const io = memoryIo(env);
    const code = await runCli(
      ["run", input, "-o", join(ws.dir, "cli.jsonl"), "--concurrency", "4", "--progress", "none"],
      io,
    );
    expect(code, io.err).toBe(1); // the invalid line

    const result = await runBatchFile({
      input,
      output: join(ws.dir, "library.jsonl"),
      concurrency: 4,
      env,
    });
    expect(result.status).toBe("completed");
    expect(result.batch).toMatchObject({ total: 25, succeeded: 24, failed: 0, invalid: 1 });

    const cli = (await readFile(join(ws.dir, "cli.jsonl"), "utf8")).trim().split("\n");
    const library = (await readFile(join(ws.dir, "library.jsonl"), "utf8")).trim().split("\n");
    expect(library).toHaveLength(25);
    expect(library.map(stable)).toEqual(cli.map(stable));
    expect(shape(result.text)).toBe(shape(io.out));
    expect(result.text).toContain("25 items");
  });
});
