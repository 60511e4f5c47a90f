// Salvo as a user gets it: `npm pack`, the tarball installed into a fresh project outside the
// repository (it cannot see the repository's node_modules), then, under Node 22 (the oldest
// `engines` allows) and Node 24: the CLI through npx, a program importing `salvo` and `salvo/sim`
// that runs a batch file through the library, and a strict TypeScript consumer of the types.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const root = fileURLToPath(new URL("../", import.meta.url));
/** The oldest Node the package's `engines` admits: the test proves the floor, not just "22". */
const NODE_22 = "22.12.0";

let project: string;
let node22: string;

/** A shell environment whose `node` (and so npx, and the `salvo` bin's shebang) is `nodeBin`. */
function envFor(nodeBin: string): NodeJS.ProcessEnv {
  const path = [dirname(nodeBin), join(project, "node_modules", ".bin"), process.env.PATH].join(
    delimiter,
  );
  return { ...process.env, PATH: path, npm_config_update_notifier: "false" };
}

async function runIn(nodeBin: string, command: string, args: string[], timeout = 60_000) {
  return exec(command, args, { cwd: project, env: envFor(nodeBin), timeout });
}

const CONSUMER_MJS = `
import { readFile, writeFile } from "node:fs/promises";
import { runBatchFile, OpenAIProvider, SalvoError } from "salvo";
import { expectedMarker, startSimulator } from "salvo/sim";

const sim = await startSimulator({ seed: 3, latency: { ttftMs: 20, msPerToken: 0 }, output: { tokens: 6 }, capacity: { slots: 4 } });
try {
  const lines = Array.from({ length: 12 }, (_, i) => ({
    custom_id: "item-" + i,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", max_tokens: 16, temperature: 0, messages: [{ role: "user", content: "question " + i }] },
  }));
  await writeFile("batch.jsonl", lines.map((l) => JSON.stringify(l)).join("\\n") + "\\n");
  const result = await runBatchFile({
    input: "batch.jsonl",
    output: "out-" + process.versions.node + ".jsonl",
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-test-not-a-key" }),
    concurrency: 4,
    fresh: true,
  });
  const out = (await readFile("out-" + process.versions.node + ".jsonl", "utf8")).trim().split("\\n").map((l) => JSON.parse(l));
  const wrong = out.filter((o, i) =>
    o.custom_id !== "item-" + i || o.error !== null || o.response.status_code !== 200 ||
    !o.response.body.choices[0].message.content.startsWith(expectedMarker(lines[i].body.messages)));
  if (!(new SalvoError("x") instanceof Error)) throw new Error("SalvoError is not an Error");
  console.log(JSON.stringify({ node: process.versions.node, status: result.status, succeeded: result.batch.succeeded, lines: out.length, wrong: wrong.length, summary: result.text.split("\\n")[0] }));
} finally {
  await sim.close();
}
`;

const CONSUMER_TS = `
import {
  type BatchFileResult,
  type CallOutcome,
  type Outcome,
  OpenAIProvider,
  RateLimitError,
  runBatchFile,
  type RunBatchFileOptions,
  Salvo,
  SalvoError,
  type SalvoOptions,
  type SalvoResult,
  TimeoutError,
} from "salvo";
import { type SimHandle, startSimulator } from "salvo/sim";

export async function main(sim: SimHandle): Promise<number> {
  const options: SalvoOptions = {
    provider: new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: "sk-test" }),
    concurrency: "auto",
    requestsPerMinute: 600,
  };
  const salvo = new Salvo(options);
  const outcome: CallOutcome = await salvo.settle({ path: "/chat/completions", body: { model: "m", messages: [] } });
  if (outcome.ok) {
    const result: SalvoResult = outcome.value;
    const status: number = result.status;
    void status;
  } else {
    const error = outcome.error;
    if (error instanceof RateLimitError) void error.retryAfterMs;
    if (error instanceof TimeoutError || error instanceof SalvoError) void error.code;
  }
  const outcomes: Array<Outcome<number>> = await salvo.scheduler.map([1, 2], async (n) => n * 2);
  const batch: RunBatchFileOptions = { input: "in.jsonl", output: "out.jsonl", concurrency: 4, signal: AbortSignal.timeout(1000) };
  const result: BatchFileResult = await runBatchFile(batch);
  await salvo.close();
  return outcomes.length + result.batch.succeeded;
}
void startSimulator;
`;

// npm, two Node versions and a TypeScript check: slow steps, and slower still on a busy machine.
describe("the packed package, installed into a fresh project", { timeout: 180_000 }, () => {
  beforeAll(async () => {
    project = await mkdtemp(join(tmpdir(), "salvo-consumer-"));
    // dist/ is fresh (the suite's global setup built it): packing must not rebuild it under the
    // other test files that run bin/salvo.js at the same time, so prepare is skipped here.
    const packed = await exec(
      "npm",
      ["pack", "--silent", "--ignore-scripts", "--pack-destination", project],
      {
        cwd: root,
        timeout: 120_000,
      },
    );
    const tarball = join(project, packed.stdout.trim().split("\n").at(-1)!);
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({
        name: "consumer",
        private: true,
        type: "module",
        allowScripts: { node: true },
      }),
    );
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          noEmit: true,
          types: ["node"],
        },
        files: ["consumer.ts"],
      }),
    );
    await writeFile(join(project, "consumer.mjs"), CONSUMER_MJS);
    await writeFile(join(project, "consumer.ts"), CONSUMER_TS);
    await exec(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        tarball,
        `node@${NODE_22}`,
        "typescript@5",
        "@types/node@22",
      ],
      { cwd: project, timeout: 240_000 },
    );
    node22 = join(project, "node_modules", ".bin", "node");
  }, 300_000);

  afterAll(async () => {
    if (project) await rm(project, { recursive: true, force: true });
  });

  it("ships compiled JavaScript with declarations and source maps, the sources they map to, the scenarios; no tests, no bench", async () => {
    const installed = join(project, "node_modules", "salvo");
    const pkg = JSON.parse(await readFile(join(installed, "package.json"), "utf8"));
    expect(pkg.exports["."]).toEqual({ types: "./dist/index.d.ts", default: "./dist/index.js" });
    const { stdout: tests } = await exec("find", [
      installed,
      "-name",
      "*.test.*",
      "-o",
      "-name",
      "bench",
      "-type",
      "d",
    ]);
    expect(tests.trim()).toBe("");
    // Every source a map names is in the package, so stack traces and "go to definition" land
    // in real code.
    const { stdout: maps } = await exec("find", [join(installed, "dist"), "-name", "*.map"]);
    const missing: string[] = [];
    for (const map of maps.trim().split("\n")) {
      const { sources } = JSON.parse(await readFile(map, "utf8")) as { sources: string[] };
      for (const source of sources) {
        const path = join(dirname(map), source);
        await readFile(path).catch(() => missing.push(path));
      }
    }
    expect(missing).toEqual([]);
    // Nothing a consumer loads is a devDependency.
    const { stdout } = await exec("npm", ["ls", "--all", "--parseable"], { cwd: project }).catch(
      (error: { stdout: string }) => ({ stdout: error.stdout }),
    );
    expect(stdout).not.toMatch(/p-limit|bottleneck|vitest|@types\/cacache|@biomejs/);
  });

  for (const version of ["22", "24"] as const) {
    describe(`on Node ${version}`, () => {
      const bin = () => (version === "22" ? node22 : process.execPath);

      it("npx salvo --help lists the commands and runs on this Node", async () => {
        const { stdout } = await runIn(bin(), "npx", ["--no-install", "salvo", "--help"]);
        expect(stdout).toMatch(/Usage: salvo/);
        for (const command of ["run", "pipeline", "probe", "verify", "demo", "sim"])
          expect(stdout).toContain(`  ${command}`);
        expect(stdout).not.toMatch(/^\s+bench\b/m);
        const { stdout: seen } = await runIn(bin(), "node", ["--version"]);
        expect(seen.trim()).toMatch(
          new RegExp(`^v${version === "22" ? NODE_22.replaceAll(".", "\\.") : "24\\."}`),
        );
      });

      it("npx salvo demo runs a small batch against the simulator", async () => {
        const dir = `demo-${version}`;
        const { stdout } = await runIn(bin(), "npx", [
          "--no-install",
          "salvo",
          "demo",
          "--items",
          "12",
          "--dir",
          dir,
          "--progress",
          "none",
        ]);
        expect(stdout).toMatch(/12 items in .*: 12 succeeded, 0 failed/);
        const out = (await readFile(join(project, dir, "results.jsonl"), "utf8"))
          .trim()
          .split("\n");
        expect(out).toHaveLength(12);
        expect(out.every((line) => JSON.parse(line).error === null)).toBe(true);
      });

      it("a program imports salvo and salvo/sim and runs a batch file through runBatchFile", async () => {
        const { stdout } = await runIn(bin(), "node", ["consumer.mjs"]);
        const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
        expect(report.node.split(".")[0]).toBe(version);
        expect(report).toMatchObject({ status: "completed", succeeded: 12, lines: 12, wrong: 0 });
        expect(report.summary).toMatch(/^salvo run: 12 items in/);
      });

      it("tsc --noEmit (strict, nodenext) accepts a consumer of the public types", async () => {
        const result = await runIn(bin(), "node", [
          "node_modules/typescript/bin/tsc",
          "-p",
          ".",
        ]).catch((error: { stdout: string; stderr: string }) => error);
        expect(`${result.stdout}${result.stderr}`).toBe("");
      });
    });
  }
});
