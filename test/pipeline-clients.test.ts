// Seed 004 end to end: `salvo pipeline` over two upstreams declared in the pipeline file, each a
// simulator of its own (an extractor that takes one request at a time, an LLM with 8 slots), each
// task naming its client. Every request goes to its own upstream, the extractor's limit never
// holds back the LLM, the two overlap statement by statement, and the run directory resumes.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import type { PipelineReport } from "../src/pipeline/pipeline-report.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-pipeline-clients-");
const env = { EXTRACT_KEY: "sk-test-extract-not-a-key", LLM_KEY: "sk-test-llm-not-a-key" };

const pipelineFile = (extractUrl: string, llmUrl: string, extractLimit: string) => `name: statements
clients:
  extractor:
    baseUrl: ${extractUrl}
    apiKeyEnv: EXTRACT_KEY
    concurrency: ${extractLimit}
    model: whisper-form
  llm:
    baseUrl: ${llmUrl}
    apiKeyEnv: LLM_KEY
    concurrency: 8
    model: gpt-4o-mini
maxTokens: 8
stages:
  - name: extract
    client: extractor
    forEach: input.statements
    key: "{{item}}"
    prompt: "Extract the text of {{item}}"
  - name: analyse
    client: llm
    forEach: input.statements
    key: "{{item}}"
    needs: ["extract/{{item}}"]
    prompt: "Structure this statement: {{deps.extract}}"
`;

it("each task goes to its own upstream with its own limit, and the two overlap statement by statement", async () => {
  const extractor = await ws.simulator({
    capacity: { slots: 1 },
    latency: { ttftMs: 30, msPerToken: 0 },
    output: { tokens: 8 },
  });
  const llm = await ws.simulator({
    capacity: { slots: 8 },
    latency: { ttftMs: 250, msPerToken: 0 },
    output: { tokens: 8 },
  });
  const statements = Array.from({ length: 16 }, (_, i) => `pdf${i >> 2}-s${i % 4}`);
  const file = join(ws.dir, "statements.yaml");
  const input = join(ws.dir, "input.json");
  const runDir = join(ws.dir, "run");
  await writeFile(file, pipelineFile(extractor.baseUrl, llm.baseUrl, "1"));
  await writeFile(input, JSON.stringify({ statements }));
  const args = ["pipeline", file, "--input", input, "--run-dir", runDir, "--progress", "none"];
  const io = memoryIo(env);
  expect(await runCli(args, io), io.err).toBe(0);

  const e = extractor.stats();
  const l = llm.stats();
  // Each upstream got its own tasks, once each, and only those.
  expect(e.arrivals).toBe(16);
  expect(l.arrivals).toBe(16);
  expect(e.maxInService).toBe(1); // the extractor's own limit
  // The LLM was not held to the extractor's limit: several of its calls ran at once...
  expect(l.maxInService).toBeGreaterThanOrEqual(3);
  // ...and each statement's analysis started once its extraction ended, while later extractions
  // were still going on (the run's own clock, from each task's output file).
  const record = async (stage: string, key: string) =>
    JSON.parse(await readFile(join(runDir, "outputs", stage, `${key}.json`), "utf8")) as {
      startedAtMs: number;
      endedAtMs: number;
    };
  const extracted = await Promise.all(statements.map((s) => record("extract", s)));
  const analysed = await Promise.all(statements.map((s) => record("analyse", s)));
  const lastExtraction = Math.max(...extracted.map((r) => r.endedAtMs));
  analysed.forEach((a, i) => {
    expect(a.startedAtMs).toBeGreaterThanOrEqual(extracted[i]!.endedAtMs);
  });
  expect(analysed.filter((a) => a.startedAtMs < lastExtraction).length).toBeGreaterThanOrEqual(8);
  const report = JSON.parse(await readFile(join(runDir, "report.json"), "utf8")) as PipelineReport;
  expect(report.status).toBe("succeeded");
  const outputs = join(runDir, "outputs", "analyse", `${statements[0]}.json`);
  expect(JSON.parse(await readFile(outputs, "utf8"))).toMatchObject({
    status: "succeeded",
    client: "llm",
  });
  for (const path of [file, join(runDir, "report.json"), join(runDir, "journal.jsonl")])
    for (const key of Object.values(env)) expect(await readFile(path, "utf8")).not.toContain(key);

  // A client's limit is tuning, not identity: the rerun with another limit reuses every task.
  await writeFile(file, pipelineFile(extractor.baseUrl, llm.baseUrl, "2"));
  const again = memoryIo(env);
  expect(await runCli(args, again), again.err).toBe(0);
  expect(extractor.stats().arrivals + llm.stats().arrivals).toBe(32);
  expect(again.err).toContain("(32 reused from the run directory)");
});

it("a task naming a client the file does not declare is refused with file:line before any call", async () => {
  const file = join(ws.dir, "bad.yaml");
  await writeFile(
    file,
    `name: bad
clients:
  llm: { model: m }
stages:
  - name: a
    client: extractor
    prompt: "x"
`,
  );
  const io = memoryIo(env);
  const code = await runCli(["pipeline", file, "--run-dir", join(ws.dir, "run")], io);
  expect(code).toBe(2);
  expect(io.err).toContain(
    `${file}:6: stages[0].client: expected a client declared under clients: (llm), got "extractor"`,
  );
});
