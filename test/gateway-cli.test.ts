// `salvo serve` from the command line: its options, its first line, a config file checked at
// start, loopback unless there are keys, and a graceful stop on SIGTERM as a real process.
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { parseGatewayConfig } from "../src/gateway/index.ts";
import { UPSTREAM_OPENAI_KEY, useGatewayWorld } from "./support/gateway-world.ts";
import { memoryIo } from "./support/memory-io.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const world = useGatewayWorld("salvo-gateway-cli-");

/** Runs `salvo serve ARGS` in-process until `stop` aborts; resolves with the exit code and output. */
async function serveInProcess(
  args: string[],
  env: Record<string, string> = {},
  whileUp?: (baseUrl: string) => Promise<void>,
): Promise<{ code: number; out: string; err: string }> {
  const stop = new AbortController();
  const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_OPENAI_KEY, ...env }, stop.signal);
  const done = runCli(["serve", ...args], io);
  if (whileUp) {
    const end = Date.now() + 20_000;
    while (!io.out.includes("\n") && Date.now() < end) {
      if (io.exitCode !== undefined || io.err.includes("[SALVO_")) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (io.out.includes("\n")) await whileUp(io.out.split("\n")[0]!);
  }
  stop.abort();
  const code = await done;
  world.saw(io.out + io.err);
  return { code, out: io.out, err: io.err };
}

describe("salvo serve", () => {
  it("--help lists its options with their defaults", async () => {
    const io = memoryIo();
    expect(await runCli(["serve", "--help"], io)).toBe(0);
    for (const option of [
      "--config <file>",
      "--host <host>",
      "--port <n>",
      "--base-url <url>",
      "--api-key-env <name>",
      "--concurrency <n|auto>",
      "--rpm <n>",
      "--tpm <n>",
      "--max-queue <n>",
      "--max-wait <duration>",
      "--grace <duration>",
      "--audit <file>",
      "--cache <dir>",
      "--max-cost <usd>",
      "--access-log <where>",
      "--sim [scenario]",
    ])
      expect(io.out).toContain(option);
    expect(io.out).toContain("(default: 8787)");
    expect(io.out).toContain("(default: 127.0.0.1)");
  });

  it("with flags only: prints its base URL first, serves, and stops on the signal", async () => {
    const sim = await world.simulator();
    const result = await serveInProcess(
      ["--base-url", sim.baseUrl, "--concurrency", "8", "--rpm", "600", "--port", "0"],
      {},
      async (baseUrl) => {
        expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
        const response = await world.fetch(`${baseUrl}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "sim-gpt", messages: [{ role: "user", content: "hi" }] }),
        });
        expect(response.status).toBe(200);
        const status = (await (
          await world.fetch(`${baseUrl.replace(/\/v1$/, "")}/salvo/status`)
        ).json()) as {
          upstreams: Array<{
            limits: Record<string, number>;
            concurrency: { limit: number; mode: string };
          }>;
        };
        expect(status.upstreams[0]!.limits.requests).toBe(600);
        expect(status.upstreams[0]!.concurrency).toMatchObject({ limit: 8, mode: "fixed" });
      },
    );
    expect(result.code, result.err).toBe(0);
    expect(result.out).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1\nsalvo serve: listening on /);
    expect(result.out).toMatch(/salvo serve: stopped\. openai: 1 requests, 1 answered, 1 attempts/);
    expect(result.err).toMatch(/"status":200/); // the access log
  });

  it("a bad gateway.yaml stops it at start, naming the field and file:line", async () => {
    const file = join(world.dir, "gateway.yaml");
    await writeFile(file, "upstreams:\n  - provider: openai\n    rpm: lots\n");
    const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_OPENAI_KEY });
    expect(await runCli(["serve", "--config", file], io)).toBe(2);
    expect(io.err).toContain(
      `${file}:3: upstreams[0].rpm: expected a number, got "lots" [SALVO_CONFIG_INVALID]`,
    );
  });

  it("the README's gateway.yaml is valid as written", async () => {
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
    expect(blocks).toHaveLength(1);
    const config = parseGatewayConfig(blocks[0]!, "README.md gateway.yaml", {
      OPENAI_API_KEY: UPSTREAM_OPENAI_KEY,
      ANTHROPIC_API_KEY: "sk-ant-readme-not-a-real-key",
      CLAIMS_GATEWAY_KEY: "gw-claims-readme-0123456789",
      BULK_GATEWAY_KEY: "gw-bulk-readme-0123456789ab",
    });
    expect(config.upstreams.map((u) => u.name)).toEqual(["openai", "claude"]);
    expect(config.tenants.map((t) => [t.name, t.priority ?? 0])).toEqual([
      ["claims-service", 10],
      ["nightly-bulk", 0],
    ]);
  });

  it("upstream flags beside --config are refused, naming the flag", async () => {
    const file = join(world.dir, "gateway.yaml");
    await writeFile(file, "upstreams:\n  - provider: openai\n");
    const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_OPENAI_KEY });
    expect(await runCli(["serve", "--config", file, "--rpm", "100"], io)).toBe(2);
    expect(io.err).toMatch(/--rpm: expected no upstream flags with --config/);
  });

  it("another address than loopback needs tenants with keys", async () => {
    const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_OPENAI_KEY });
    expect(await runCli(["serve", "--host", "0.0.0.0", "--port", "0"], io)).toBe(2);
    expect(io.err).toMatch(/host: expected a loopback address .* needs tenants with keys/);
  });

  it("a missing upstream key names the variable", async () => {
    const io = memoryIo({});
    expect(await runCli(["serve", "--port", "0"], io)).toBe(2);
    expect(io.err).toMatch(
      /OPENAI_API_KEY: expected the upstream's openai API key in the environment variable OPENAI_API_KEY/,
    );
  });

  it("a config with tenants may bind every address, and refuses callers without a key", async () => {
    const sim = await world.simulator();
    const file = join(world.dir, "gateway.yaml");
    await writeFile(
      file,
      [
        "listen: {host: 0.0.0.0, port: 0}",
        "upstreams:",
        "  - provider: openai",
        `    baseUrl: ${sim.baseUrl}`,
        "    concurrency: 4",
        "tenants:",
        "  - name: claims",
        "    keyEnv: CLAIMS_GATEWAY_KEY",
        "    admin: true",
        `audit: ${join(world.dir, "calls.log")}`,
        "",
      ].join("\n"),
    );
    const key = "gw-cli-claims-key-0123456789abcdef";
    const result = await serveInProcess(
      ["--config", file],
      { CLAIMS_GATEWAY_KEY: key },
      async (baseUrl) => {
        expect(baseUrl).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/v1$/);
        const local = baseUrl.replace("0.0.0.0", "127.0.0.1");
        const call = (headers: Record<string, string>) =>
          world.fetch(`${local}/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: JSON.stringify({ model: "sim-gpt", messages: [{ role: "user", content: "hi" }] }),
          });
        expect((await call({})).status).toBe(401);
        expect((await call({ authorization: `Bearer ${key}` })).status).toBe(200);
      },
    );
    expect(result.code, result.err).toBe(0);
    expect(result.out).toContain("1 tenant(s), keys required");
  });

  it("SIGTERM: stops accepting, lets the call in flight finish within the grace period, exits 0", async () => {
    const sim = await world.simulator({ latency: { ttftMs: 1500 } });
    const child = spawn(
      process.execPath,
      ["bin/salvo.js", "serve", "--base-url", sim.baseUrl, "--port", "0", "--grace", "20s"],
      { cwd: ROOT, env: { ...process.env, OPENAI_API_KEY: UPSTREAM_OPENAI_KEY } },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    while (!out.includes("\n")) await new Promise((r) => setTimeout(r, 20));
    const baseUrl = out.split("\n")[0]!;
    const inFlight = world.fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "sim-gpt",
        messages: [{ role: "user", content: "finish me" }],
      }),
    });
    while (sim.stats().inService === 0) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGTERM");
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(
      ((await answer.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!
        .message.content,
    ).toContain("finish me");
    // New connections are refused once it stops accepting.
    await expect(world.fetch(`${baseUrl}/models`)).rejects.toThrow();
    expect(await exited).toBe(0);
    world.saw(out + err);
    expect(err).toMatch(
      /salvo serve: stopping: no new calls; finishing 1 call\(s\) in flight \(up to 20s\)/,
    );
    expect(out).toMatch(/salvo serve: stopped\. openai: 1 requests, 1 answered/);
  });
});
