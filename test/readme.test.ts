// The README is part of the interface: its example input lines run as shown, every library
// example (each ```ts block) runs as written as a program of its own, and every option it
// mentions exists in the command's --help.
import { execFile, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { createGateway, listen } from "../src/gateway/index.ts";
import { loadScenario, startSimulator } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";

const exec = promisify(execFile);
const root = fileURLToPath(new URL("../", import.meta.url));

const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");

describe("README", () => {
  const blocks = [...readme.matchAll(/```jsonl\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

  it("shows one example input line per shape", () => {
    expect(blocks).toHaveLength(3);
  });

  it.each(blocks.map((block, i) => [i, block]))(
    "example input %i runs with salvo run --sim",
    async (_i, block) => {
      const dir = await mkdtemp(join(tmpdir(), "salvo-readme-"));
      try {
        const input = join(dir, "requests.jsonl");
        await writeFile(input, block);
        const io = memoryIo();
        const code = await runCli(
          [
            "run",
            input,
            "--output",
            join(dir, "results.jsonl"),
            "--sim",
            "claims-demo",
            "--progress",
            "none",
          ],
          io,
        );
        expect(code, io.err).toBe(0);
        expect(io.out).toContain("1 succeeded, 0 failed");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  // A library example runs as a user's program would: a file of its own, importing "salvo" by
  // name (inside the repository that resolves to the package itself, its built dist/), run by
  // Node with the README's OpenAI batch lines as requests.jsonl beside it, against the
  // simulator through the variables the SDKs read.
  const programs = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

  it("has library examples", () => {
    expect(programs.length).toBeGreaterThanOrEqual(3);
  });

  it.each(programs.map((program, i) => [i, program.split("\n")[0], program]))(
    "library example %i (%s) runs as written",
    async (_i, _first, program) => {
      const parent = join(root, ".readme-run");
      await mkdir(parent, { recursive: true });
      const dir = await mkdtemp(join(parent, "example-"));
      const sim = await startSimulator(
        await loadScenario(join(root, "scenarios/claims-demo.yaml")),
      );
      try {
        await writeFile(join(dir, "requests.jsonl"), blocks[0] ?? "");
        await writeFile(join(dir, "example.ts"), program);
        const result = await exec(process.execPath, ["example.ts"], {
          cwd: dir,
          timeout: 60_000,
          env: {
            ...process.env,
            OPENAI_API_KEY: "sk-readme-not-a-real-key",
            OPENAI_BASE_URL: sim.baseUrl,
            ANTHROPIC_API_KEY: "sk-ant-readme-not-a-real-key",
            ANTHROPIC_BASE_URL: sim.origin,
          },
        }).catch((error: { code: number; stdout: string; stderr: string }) => error);
        expect("code" in result ? result.code : 0, `${result.stdout}\n${result.stderr}`).toBe(0);
        expect(result.stderr).not.toMatch(/Error|error:/);
      } finally {
        await sim.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  const pythons = [...readme.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  const python = ["python3", "python"].find(
    (cmd) => spawnSync(cmd, ["-c", "import sys; assert sys.version_info >= (3, 8)"]).status === 0,
  );

  it("has a Python example", () => {
    expect(pythons.length).toBeGreaterThanOrEqual(1);
  });

  // Real Python, standard library only, against the gateway (a tenant's key) over the simulator.
  it.skipIf(python === undefined).each(pythons.map((program, i) => [i, program]))(
    `Python example %i runs as written against salvo serve${python === undefined ? " (skipped: no python3 on PATH; .ci/run installs it)" : ""}`,
    async (_i, program) => {
      const sim = await startSimulator({ latency: { ttftMs: 5, msPerToken: 0 } });
      const gateway = createGateway({
        upstreams: [{ provider: "openai", baseUrl: sim.baseUrl, apiKey: "sk-readme-upstream" }],
        tenants: [{ name: "claims", keys: ["gw-readme-python-key"] }],
      });
      const server = await listen(gateway, { port: 0 });
      const dir = await mkdtemp(join(tmpdir(), "salvo-readme-python-"));
      try {
        await writeFile(join(dir, "example.py"), program);
        const result = await exec(python!, ["example.py"], {
          cwd: dir,
          timeout: 30_000,
          env: {
            ...process.env,
            SALVO_GATEWAY_URL: server.baseUrl,
            SALVO_GATEWAY_KEY: "gw-readme-python-key",
          },
        }).catch((error: { code: number; stdout: string; stderr: string }) => error);
        expect("code" in result ? result.code : 0, `${result.stdout}\n${result.stderr}`).toBe(0);
        expect(result.stdout.trim().length).toBeGreaterThan(0);
        expect(sim.stats({ timeline: false }).completions).toBeGreaterThanOrEqual(1);
      } finally {
        await server.close();
        await sim.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("every option it mentions for a command exists in that command's --help", async () => {
    const help: Record<string, string> = {};
    for (const command of [
      "run",
      "sim",
      "demo",
      "probe",
      "verify",
      "pipeline",
      "serve",
      "worker",
      "cache stats",
      "cache clear",
    ]) {
      const io = memoryIo();
      await runCli([...command.split(" "), "--help"], io);
      help[command] = io.out;
    }
    // `npm run bench -- --quick`: the bench's own options (bench/run.ts) count too.
    const bench = await readFile(new URL("../bench/run.ts", import.meta.url), "utf8");
    const all = [
      ...Object.values(help),
      bench.replace(/^\s+"?([a-z-]+)"?: \{ type/gm, "--$1"),
    ].join("\n");
    const mentioned = new Set([...readme.matchAll(/(?<![\w-])--[a-z][a-z-]+/g)].map((m) => m[0]));
    const unknown = [...mentioned].filter((flag) => !all.includes(flag) && flag !== "--help");
    expect(unknown).toEqual([]);
  });

  it("the npm scripts it names exist", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    for (const [, script] of readme.matchAll(/npm (?:run )?(start|test|bench[\w:-]*)/g)) {
      expect(pkg.scripts[script ?? ""], script).toBeTypeOf("string");
    }
  });
});
