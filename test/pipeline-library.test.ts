// One path, not two: `salvo pipeline` is a thin edge over the library's `runPipelineFile`. The
// same file and input through both give the same outputs and the same summary; a run directory
// that is a file is a usage error before any call.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { runPipelineFile } from "../src/pipeline/run-pipeline-file.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const KEY = "sk-pipeline-library-not-a-key";
const PIPELINE = new URL("../examples/claim-coverage.yaml", import.meta.url).pathname;
const INPUT = new URL("../examples/claim-coverage.input.json", import.meta.url).pathname;
const ws = useWorkspace("salvo-pipeline-library-", {
  seed: 2,
  latency: { ttftMs: 10, msPerToken: 0.5 },
  output: { tokens: { min: 20, max: 60 } },
});

/** Each task's answer text by output file, without what differs between two runs. */
async function outputs(runDir: string): Promise<Record<string, unknown>> {
  const files = await readdir(join(runDir, "outputs"), { recursive: true, withFileTypes: true });
  const found: Record<string, unknown> = {};
  for (const file of files.filter((f) => f.isFile())) {
    const path = join(file.parentPath, file.name);
    const record = JSON.parse(await readFile(path, "utf8"));
    found[relative(runDir, path)] = {
      status: record.status,
      text: record.text,
      value: record.value,
    };
  }
  return found;
}

describe("salvo pipeline and runPipelineFile", () => {
  it("give the same outputs and the same summary for the same file and input", async () => {
    const sim = await ws.simulator();
    const env = { OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl };
    const io = memoryIo(env);
    const cliDir = join(ws.dir, "cli");
    const args = [
      "pipeline",
      PIPELINE,
      "--input",
      INPUT,
      "--run-dir",
      cliDir,
      "--progress",
      "none",
    ];
    expect(await runCli(args, io), io.err).toBe(0);

    const libDir = join(ws.dir, "library");
    const result = await runPipelineFile({
      file: PIPELINE,
      input: { path: INPUT },
      runDir: libDir,
      env,
    });
    expect(result.status).toBe("succeeded");
    expect(await outputs(libDir)).toEqual(await outputs(cliDir));
    const shape = (text: string) =>
      text
        .replace(/\d+(\.\d+)?(ms|s|m)\b/g, "T")
        .replace(/\d+\.\d+x/g, "Rx")
        .replace(/critical path T \(.*\)/, "critical path T (timing-dependent)")
        .replaceAll(libDir, "DIR")
        .replaceAll(cliDir, "DIR");
    expect(shape(result.text)).toBe(shape(io.err));
  });

  it("a --run-dir that is a file: exit 2, named, nothing called", async () => {
    const sim = await ws.simulator();
    const file = join(ws.dir, "not-a-dir");
    await writeFile(file, "mine\n");
    const io = memoryIo({ OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl });
    const code = await runCli(
      ["pipeline", PIPELINE, "--input", INPUT, "--run-dir", file, "--progress", "none"],
      io,
    );
    expect(code).toBe(2);
    expect(io.err).toMatch(/--run-dir: expected a directory .*not a file, got .*not-a-dir/);
    expect(io.err).not.toMatch(/internal error/);
    expect(await readFile(file, "utf8")).toBe("mine\n");
    expect(sim.stats({ timeline: false }).arrivals).toBe(0);
  });
});
