// Salvo as a batch API: `salvo serve` answers the OpenAI Files + Batch APIs and Anthropic's
// Message Batches, as the official SDKs call them, and runs each batch through its schedulers
// under the real-time limits (the simulator is the upstream). A 500-line batch completes with
// every custom_id once and the right answer; tenants see only their own files and batches; a
// gateway killed with SIGKILL mid-batch and restarted on the same state directory completes it,
// with the upstream paid at most once per line plus the calls in flight at the kill.
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { createGateway, listen } from "../src/gateway/index.ts";
import { expectedMarker, type SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-batch-api-gateway-");
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const UPSTREAM_KEY = "sk-upstream-batch-gateway-not-a-key";

/** What the gateway processes printed, for the leak check. */
const printed: Array<() => string> = [];

// The upstream key reaches no file the gateway wrote (state: files, batches, results) and nothing
// it printed. Registered after the workspace's hooks, so it runs before the directory goes.
afterEach(async () => {
  const files = await readdir(ws.dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const file of files)
    if (file.isFile()) {
      const path = join(file.parentPath, file.name);
      expect(await readFile(path, "utf8"), `the upstream key leaked into ${path}`).not.toContain(
        UPSTREAM_KEY,
      );
    }
  for (const text of printed.splice(0))
    expect(text(), "the upstream key leaked into the gateway's output").not.toContain(UPSTREAM_KEY);
});
const ALICE = "gw-alice-batch-key-0123456789";
const BOB = "gw-bob-batch-key-0123456789ab";
const N = 500;
/** Calls the upstream may have in flight at once (each gateway upstream's concurrency). */
const CONCURRENCY = 8;

const question = (i: number) => `Is claim line ${i} covered by the policy?`;

function openaiInput(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `claim-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "gpt-4o-mini",
        max_tokens: 16,
        messages: [{ role: "user", content: question(i) }],
      },
    }),
  ).join("\n");
}

const anthropicRequests = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    custom_id: `claim-${i}`,
    params: {
      model: "claude-haiku-4-5",
      max_tokens: 16,
      messages: [{ role: "user" as const, content: question(i) }],
    },
  }));

const upstreams = (sim: SimHandle) => [
  {
    provider: "openai" as const,
    baseUrl: sim.baseUrl,
    apiKey: UPSTREAM_KEY,
    concurrency: CONCURRENCY,
  },
  {
    provider: "anthropic" as const,
    baseUrl: sim.origin,
    apiKey: UPSTREAM_KEY,
    concurrency: CONCURRENCY,
  },
];

const tenants = [
  { name: "alice", keys: [ALICE] },
  { name: "bob", keys: [BOB] },
];

async function poll<T>(get: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (;;) {
    const value = await get();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every custom_id once, each with the answer to its own question. */
function expectAnswered(answers: Array<{ customId: string; text: string }>, n: number): void {
  expect(answers.map((a) => a.customId).sort()).toEqual(
    Array.from({ length: n }, (_, i) => `claim-${i}`).sort(),
  );
  for (const { customId, text } of answers) {
    const i = Number(customId.slice("claim-".length));
    expect(
      text.startsWith(expectedMarker([{ role: "user", content: question(i) }])),
      customId,
    ).toBe(true);
  }
}

async function openaiAnswers(client: OpenAI, batch: OpenAI.Batches.Batch) {
  const text = await (await client.files.content(batch.output_file_id!)).text();
  return text
    .trim()
    .split("\n")
    .map((l) => {
      const line = JSON.parse(l) as {
        custom_id: string;
        error: unknown;
        response: {
          status_code: number;
          body: { choices: Array<{ message: { content: string } }> };
        };
      };
      expect(line.error).toBeNull();
      expect(line.response.status_code).toBe(200);
      return { customId: line.custom_id, text: line.response.body.choices[0]!.message.content };
    });
}

async function anthropicAnswers(client: Anthropic, id: string) {
  const answers: Array<{ customId: string; text: string }> = [];
  for await (const line of await client.messages.batches.results(id)) {
    expect(line.result.type).toBe("succeeded");
    if (line.result.type !== "succeeded") continue;
    const block = line.result.message.content[0]!;
    answers.push({ customId: line.custom_id, text: block.type === "text" ? block.text : "" });
  }
  return answers;
}

describe("salvo serve as a batch API", () => {
  it("the openai SDK: files.create + batches.create + polling + files.content, 500 lines, each custom_id once and right; tenants see only their own", async () => {
    const sim = await ws.simulator();
    const gateway = createGateway({
      upstreams: upstreams(sim),
      tenants,
      stateDir: join(ws.dir, "state"),
    });
    await using server = await listen(gateway, { port: 0 });
    const alice = new OpenAI({ baseURL: server.baseUrl, apiKey: ALICE, maxRetries: 0 });
    const bob = new OpenAI({ baseURL: server.baseUrl, apiKey: BOB, maxRetries: 0 });
    const file = await alice.files.create({
      file: await toFile(Buffer.from(openaiInput(N)), "claims.jsonl"),
      purpose: "batch",
    });
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "claims.jsonl" });
    const created = await alice.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "claims" },
    });
    expect(created).toMatchObject({
      object: "batch",
      status: "validating",
      metadata: { job: "claims" },
    });
    const done = await poll(
      () => alice.batches.retrieve(created.id),
      (b) => ["completed", "failed", "expired", "cancelled"].includes(b.status),
    );
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
    expect(done.error_file_id).toBeNull();
    expectAnswered(await openaiAnswers(alice, done), N);
    // Through the gateway's scheduler, under its limits: never more than its concurrency at once.
    const stats = sim.stats({ timeline: false });
    expect(stats.completions).toBe(N);
    expect(stats.maxInService).toBeLessThanOrEqual(CONCURRENCY);
    // Another tenant sees none of it.
    await expect(bob.batches.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(bob.files.content(done.output_file_id!)).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
    await expect(
      bob.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bobs: string[] = [];
    for await (const batch of bob.batches.list()) bobs.push(batch.id);
    expect(bobs).toEqual([]);
    const alices: string[] = [];
    for await (const batch of alice.batches.list()) alices.push(batch.id);
    expect(alices).toEqual([created.id]);
    // No key, no batch.
    const anonymous = new OpenAI({
      baseURL: server.baseUrl,
      apiKey: "not-a-gateway-key",
      maxRetries: 0,
    });
    await expect(anonymous.batches.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("the anthropic SDK: messages.batches.create + retrieve + results, 500 lines, each custom_id once and right; tenants see only their own", async () => {
    const sim = await ws.simulator();
    const gateway = createGateway({
      upstreams: upstreams(sim),
      tenants,
      stateDir: join(ws.dir, "state"),
    });
    await using server = await listen(gateway, { port: 0 });
    const alice = new Anthropic({ baseURL: server.origin, apiKey: ALICE, maxRetries: 0 });
    const bob = new Anthropic({ baseURL: server.origin, apiKey: BOB, maxRetries: 0 });
    const created = await alice.messages.batches.create({ requests: anthropicRequests(N) });
    expect(created).toMatchObject({
      type: "message_batch",
      processing_status: "in_progress",
      request_counts: { processing: N },
    });
    const done = await poll(
      () => alice.messages.batches.retrieve(created.id),
      (b) => b.processing_status === "ended",
    );
    expect(done.request_counts).toEqual({
      processing: 0,
      succeeded: N,
      errored: 0,
      canceled: 0,
      expired: 0,
    });
    expect(done.results_url).toBe(`${server.origin}/v1/messages/batches/${created.id}/results`);
    expectAnswered(await anthropicAnswers(alice, created.id), N);
    expect(sim.stats({ timeline: false }).completions).toBe(N);
    await expect(bob.messages.batches.retrieve(created.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    await expect(bob.messages.batches.results(created.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
  });

  it("cancel: the requests not sent yet are cancelled, those answered stay; a line the upstream refuses is an error line", async () => {
    const sim = await ws.simulator({ latency: { ttftMs: 30 } });
    const gateway = createGateway({
      upstreams: upstreams(sim),
      tenants,
      stateDir: join(ws.dir, "state"),
      batchWindow: 4,
    });
    await using server = await listen(gateway, { port: 0 });
    const alice = new OpenAI({ baseURL: server.baseUrl, apiKey: ALICE, maxRetries: 0 });
    const bad = JSON.stringify({
      custom_id: "bad",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "gpt-4o-mini", messages: [] },
    });
    const file = await alice.files.create({
      file: await toFile(Buffer.from(`${bad}\n${openaiInput(200)}`), "in.jsonl"),
      purpose: "batch",
    });
    const created = await alice.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await poll(
      () => alice.batches.retrieve(created.id),
      (b) => (b.request_counts?.completed ?? 0) >= 10,
    );
    const cancelling = await alice.batches.cancel(created.id);
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    const done = await poll(
      () => alice.batches.retrieve(created.id),
      (b) => b.status === "cancelled",
    );
    expect(done.cancelled_at).not.toBeNull();
    const errors = (await (await alice.files.content(done.error_file_id!)).text())
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            custom_id: string;
            response: { status_code: number } | null;
            error: { code: string } | null;
          },
      );
    const answered = done.request_counts!.completed;
    expect(answered).toBeGreaterThanOrEqual(10);
    expect(answered).toBeLessThan(200);
    expect(errors.find((e) => e.custom_id === "bad")?.response?.status_code).toBe(400);
    const cancelled = errors.filter((e) => e.error?.code === "batch_cancelled");
    expect(cancelled.length + answered + 1).toBe(201);
    // Nothing was sent after the cancel took effect: the upstream answered what was answered.
    expect(sim.stats({ timeline: false }).completions).toBe(answered);
    await expect(alice.batches.cancel(created.id)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe("salvo serve's state directory", () => {
  async function startLine(args: string[], env: Record<string, string>): Promise<string> {
    const stop = new AbortController();
    const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_KEY, ...env }, stop.signal);
    const done = runCli(["serve", "--port", "0", "--access-log", "none", ...args], io);
    while (
      !io.out.includes("state in ") &&
      io.exitCode === undefined &&
      !io.err.includes("[SALVO_")
    )
      await new Promise((resolve) => setTimeout(resolve, 10));
    stop.abort();
    expect(await done, io.err).toBe(0);
    return io.out;
  }

  it("defaults to the XDG state directory, named at start-up, and created by the first batch only", async () => {
    const sim = await ws.simulator();
    const out = await startLine(["--base-url", sim.baseUrl], { XDG_STATE_HOME: ws.dir });
    expect(out).toContain(
      `state in ${join(ws.dir, "salvo", "serve")}; a restart resumes every batch`,
    );
    // Serving no batch left nothing behind.
    expect(await readdir(ws.dir)).toEqual([]);
  });

  it("--state names one, created at start; one it cannot use stops it, naming --state", async () => {
    const sim = await ws.simulator();
    const state = join(ws.dir, "deep", "state");
    expect(await startLine(["--base-url", sim.baseUrl, "--state", state], {})).toContain(
      `state in ${state}`,
    );
    expect(await readdir(join(ws.dir, "deep"))).toEqual(["state"]);
    const blocked = join(ws.dir, "file");
    await writeFile(blocked, "not a directory");
    const io = memoryIo({ OPENAI_API_KEY: UPSTREAM_KEY });
    expect(
      await runCli(
        ["serve", "--base-url", sim.baseUrl, "--port", "0", "--state", join(blocked, "state")],
        io,
      ),
    ).toBe(2);
    expect(io.err).toMatch(/--state: expected a directory the gateway may create, read and write/);
  });
});

/** `salvo serve` as a process (bin/salvo.js), on a fixed state directory. */
async function serve(
  config: string,
  state: string,
): Promise<{ child: ChildProcess; baseUrl: string; origin: string }> {
  const child = spawn(
    process.execPath,
    [
      "bin/salvo.js",
      "serve",
      "--config",
      config,
      "--port",
      "0",
      "--state",
      state,
      "--access-log",
      "none",
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        OPENAI_API_KEY: UPSTREAM_KEY,
        ANTHROPIC_API_KEY: UPSTREAM_KEY,
        ALICE_KEY: ALICE,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (err += d));
  printed.push(() => out + err);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  while (!out.includes("state in ")) {
    const gone = await Promise.race([
      exited.then(() => true),
      new Promise((r) => setTimeout(r, 20)),
    ]);
    if (gone === true) throw new Error(`salvo serve exited: ${err}`);
  }
  expect(out).toContain(`batch APIs (files, batches, message batches): state in ${state}`);
  const baseUrl = out.split("\n")[0]!;
  return { child, baseUrl, origin: baseUrl.replace(/\/v1$/, "") };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

describe("salvo serve killed with SIGKILL mid-batch and restarted", () => {
  for (const api of ["openai", "anthropic"] as const) {
    it(`${api}: completes the batch, every custom_id once and right, the upstream paid at most lines + calls in flight`, async () => {
      const sim = await ws.simulator({ latency: { ttftMs: 40 } });
      const config = join(ws.dir, "gateway.yaml");
      await writeFile(
        config,
        `upstreams:
  - provider: openai
    baseUrl: ${sim.baseUrl}
    concurrency: ${CONCURRENCY}
  - provider: anthropic
    baseUrl: ${sim.origin}
    concurrency: ${CONCURRENCY}
tenants:
  - name: alice
    keyEnv: ALICE_KEY
`,
      );
      const state = join(ws.dir, "state");
      let gateway = await serve(config, state);
      let id: string;
      if (api === "openai") {
        const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: ALICE, maxRetries: 0 });
        const file = await client.files.create({
          file: await toFile(Buffer.from(openaiInput(N)), "claims.jsonl"),
          purpose: "batch",
        });
        id = (
          await client.batches.create({
            input_file_id: file.id,
            endpoint: "/v1/chat/completions",
            completion_window: "24h",
          })
        ).id;
      } else {
        const client = new Anthropic({ baseURL: gateway.origin, apiKey: ALICE, maxRetries: 0 });
        id = (await client.messages.batches.create({ requests: anthropicRequests(N) })).id;
      }
      // Mid-batch: some answered, most not.
      await poll(
        async () => sim.stats({ timeline: false }).completions,
        (n) => n >= 100,
      );
      await kill(gateway.child);
      const atKill = sim.stats({ timeline: false }).completions;
      expect(atKill).toBeLessThan(N);
      // The answers recorded before the kill are in the state directory.
      expect((await readdir(join(state, "batches"))).some((f) => f === `${id}.results.jsonl`)).toBe(
        true,
      );

      gateway = await serve(config, state);
      try {
        if (api === "openai") {
          const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: ALICE, maxRetries: 0 });
          const done = await poll(
            () => client.batches.retrieve(id),
            (b) => ["completed", "failed", "expired", "cancelled"].includes(b.status),
          );
          expect(done.status).toBe("completed");
          expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
          expectAnswered(await openaiAnswers(client, done), N);
        } else {
          const client = new Anthropic({ baseURL: gateway.origin, apiKey: ALICE, maxRetries: 0 });
          const done = await poll(
            () => client.messages.batches.retrieve(id),
            (b) => b.processing_status === "ended",
          );
          expect(done.request_counts.succeeded).toBe(N);
          expectAnswered(await anthropicAnswers(client, id), N);
        }
      } finally {
        await kill(gateway.child);
      }
      // Each line was paid once, but the calls in flight at the kill (at most the concurrency).
      const paid = sim.stats({ timeline: false }).completions;
      expect(paid).toBeGreaterThanOrEqual(N);
      expect(paid).toBeLessThanOrEqual(N + CONCURRENCY);
    }, 60_000);
  }
});
