// The simulator's batch APIs through the official SDKs, as a program using the providers' batch
// APIs would call them: OpenAI files + batches (life cycle, request_counts, output and error
// files, expiry, partial failures, validation errors, cancel, list, limits, key isolation) and
// Anthropic message batches (create, retrieve, results, expiry, errors, cancel, list, delete).
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { expectedMarker, type SimHandle } from "../src/sim/index.ts";
import { useWorkspace } from "./support/workspace.ts";

const ws = useWorkspace("salvo-batch-api-sim-");

const openai = (sim: SimHandle, apiKey = "sk-batch-test-key") =>
  new OpenAI({ baseURL: sim.baseUrl, apiKey, maxRetries: 0 });
const anthropic = (sim: SimHandle, apiKey = "sk-ant-batch-test-key") =>
  new Anthropic({ baseURL: sim.origin, apiKey, maxRetries: 0 });

const question = (i: number) => `Is item ${i} covered by the policy?`;

function openaiLines(n: number, model = "gpt-4o-mini"): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model, max_tokens: 20, messages: [{ role: "user", content: question(i) }] },
    }),
  ).join("\n");
}

async function upload(client: OpenAI, text: string, name = "input.jsonl") {
  return client.files.create({ file: await toFile(Buffer.from(text), name), purpose: "batch" });
}

/** Polls until the batch is terminal (the simulator's batches take a second or two here). */
async function settled(client: OpenAI, id: string): Promise<OpenAI.Batches.Batch> {
  for (;;) {
    const batch = await client.batches.retrieve(id);
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch;
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
}

type OutputLine = {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
};

async function fileLines(client: OpenAI, id: string | null | undefined): Promise<OutputLine[]> {
  if (!id) return [];
  const text = await (await client.files.content(id)).text();
  return text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as OutputLine);
}

const contentOf = (line: OutputLine) =>
  (line.response!.body as { choices: Array<{ message: { content: string } }> }).choices[0]!.message
    .content;

describe("the simulator's OpenAI Batch API", () => {
  it("files.create + batches.create + polling + files.content: every request answered once, right, in the real shapes", async () => {
    const sim = await ws.simulator({ batch: { validatingMs: 200, completionMs: 300 } });
    const client = openai(sim);
    const file = await upload(client, openaiLines(40));
    expect(file).toMatchObject({ object: "file", purpose: "batch", status: "processed" });
    expect(file.id).toMatch(/^file-/);
    expect(file.bytes).toBe(Buffer.byteLength(openaiLines(40)));
    expect((await client.files.retrieve(file.id)).filename).toBe("input.jsonl");

    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "nightly" },
    });
    expect(created).toMatchObject({
      object: "batch",
      status: "validating",
      endpoint: "/v1/chat/completions",
      input_file_id: file.id,
      completion_window: "24h",
      metadata: { job: "nightly" },
      output_file_id: null,
      error_file_id: null,
      errors: null,
      request_counts: { total: 0, completed: 0, failed: 0 },
    });
    expect(created.id).toMatch(/^batch_/);
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const done = await settled(client, created.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect(done.in_progress_at).not.toBeNull();
    expect(done.completed_at).not.toBeNull();
    expect(done.model).toBe("gpt-4o-mini");
    expect(done.error_file_id).toBeNull();
    expect(done.usage?.output_tokens).toBeGreaterThan(0);
    const output = await fileLines(client, done.output_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(
      Array.from({ length: 40 }, (_, i) => `req-${i}`).sort(),
    );
    for (const line of output) {
      const i = Number(line.custom_id.slice(4));
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.error).toBeNull();
      expect(line.response?.status_code).toBe(200);
      expect(line.response?.request_id).toMatch(/^req_/);
      expect(line.response?.body.object).toBe("chat.completion");
      expect(
        contentOf(line).startsWith(expectedMarker([{ role: "user", content: question(i) }])),
      ).toBe(true);
    }
    // The output file is a file like any other, purpose batch_output.
    expect((await client.files.retrieve(done.output_file_id!)).purpose).toBe("batch_output");
    const stats = sim.stats({ timeline: false });
    expect(stats.batch.submitted).toEqual({ openai: 1, anthropic: 0 });
    expect(stats.batch.succeeded).toBe(40);
    expect(stats.batch.filesUploaded).toBe(1);
    // A batch is not a real-time call: the real-time endpoints saw nothing.
    expect(stats.arrivals).toBe(0);
  });

  it("expires at the end of its completion window: processed lines in the output file, the rest batch_expired in the error file", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 1000, expiryMs: 500 } });
    const client = openai(sim);
    const file = await upload(client, openaiLines(20));
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await settled(client, batch.id);
    expect(done.status).toBe("expired");
    expect(done.expired_at).not.toBeNull();
    const output = await fileLines(client, done.output_file_id);
    const errors = await fileLines(client, done.error_file_id);
    expect(output.length).toBe(10);
    expect(errors.length).toBe(10);
    expect(done.request_counts).toEqual({ total: 20, completed: 10, failed: 10 });
    for (const line of errors)
      expect(line).toMatchObject({
        response: null,
        error: {
          code: "batch_expired",
          message: "This request could not be executed before the completion window expired.",
        },
      });
    expect(new Set([...output, ...errors].map((l) => l.custom_id)).size).toBe(20);
    expect(sim.stats({ timeline: false }).batch).toMatchObject({ succeeded: 10, expired: 10 });
  });

  it("partial failures: a failed request is in the error file with its non-2xx response; an invalid one with its 400", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 100, pError: 0.3 } });
    const client = openai(sim);
    const bad = JSON.stringify({
      custom_id: "bad",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "gpt-4o-mini", messages: [] },
    });
    const file = await upload(client, `${openaiLines(30)}\n${bad}\n`);
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await settled(client, batch.id);
    expect(done.status).toBe("completed");
    const output = await fileLines(client, done.output_file_id);
    const errors = await fileLines(client, done.error_file_id);
    expect(output.length + errors.length).toBe(31);
    expect(errors.length).toBeGreaterThan(1);
    expect(done.request_counts).toEqual({
      total: 31,
      completed: output.length,
      failed: errors.length,
    });
    for (const line of errors) {
      expect(line.error).toBeNull();
      const body = line.response?.body as { error: { type: string; message: string } };
      if (line.custom_id === "bad") {
        expect(line.response?.status_code).toBe(400);
        expect(body.error.type).toBe("invalid_request_error");
      } else {
        expect(line.response?.status_code).toBe(500);
        expect(body.error.type).toBe("server_error");
      }
    }
    expect(errors.some((l) => l.custom_id === "bad")).toBe(true);
  });

  it("an input file that fails validation fails the batch with errors.data naming the lines", async () => {
    const sim = await ws.simulator({ batch: { validatingMs: 50 } });
    const client = openai(sim);
    const lines = openaiLines(3).split("\n");
    const text = [
      lines[0],
      "{not json",
      lines[1],
      lines[1],
      lines[2]!.replace("/v1/chat/completions", "/v1/embeddings"),
    ].join("\n");
    const file = await upload(client, text);
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await settled(client, batch.id);
    expect(done.status).toBe("failed");
    expect(done.failed_at).not.toBeNull();
    expect(done.output_file_id).toBeNull();
    expect(done.errors?.object).toBe("list");
    expect(done.errors?.data?.map((e) => [e.code, e.line])).toEqual([
      ["invalid_json_line", 2],
      ["duplicate_custom_id", 4],
      ["url_mismatch", 5],
    ]);
    expect(done.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });
  });

  it("refuses what the real API refuses: an unknown file, another purpose, a bad window, a non-.jsonl batch file", async () => {
    const sim = await ws.simulator();
    const client = openai(sim);
    await expect(
      client.batches.create({
        input_file_id: "file-nope",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const other = await client.files.create({
      file: await toFile(Buffer.from("{}"), "notes.jsonl"),
      purpose: "user_data",
    });
    await expect(
      client.batches.create({
        input_file_id: other.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    const file = await upload(client, openaiLines(1));
    await expect(
      client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "48h" as "24h",
      }),
    ).rejects.toMatchObject({ status: 400, param: "completion_window" });
    await expect(upload(client, openaiLines(1), "input.txt")).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining("Must be .jsonl"),
    });
  });

  it("enforces its size limits: more requests than maxRequests fail the batch with too_many_tasks", async () => {
    const sim = await ws.simulator({ batch: { maxRequests: 5 } });
    const client = openai(sim);
    const file = await upload(client, openaiLines(6));
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await settled(client, batch.id);
    expect(done.status).toBe("failed");
    expect(done.errors?.data?.[0]?.code).toBe("too_many_tasks");
  });

  it("cancels: cancelling, then cancelled, with the requests processed by then in the output file and the rest batch_cancelled", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 60_000, cancellingMs: 150 } });
    const client = openai(sim);
    const file = await upload(client, openaiLines(10));
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const cancelling = await client.batches.cancel(batch.id);
    expect(cancelling.status).toBe("cancelling");
    expect(cancelling.cancelling_at).not.toBeNull();
    const done = await settled(client, batch.id);
    expect(done.status).toBe("cancelled");
    expect(done.cancelled_at).not.toBeNull();
    const errors = await fileLines(client, done.error_file_id);
    expect(errors).toHaveLength(10);
    expect(errors.every((l) => l.error?.code === "batch_cancelled")).toBe(true);
    await expect(client.batches.cancel(batch.id)).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    expect(sim.stats({ timeline: false }).batch.cancelled).toBe(10);
  });

  it("lists batches newest first across pages, and each API key sees only its own files and batches", async () => {
    const sim = await ws.simulator();
    const client = openai(sim);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const file = await upload(client, openaiLines(1));
      const batch = await client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      ids.push(batch.id);
    }
    const listed: string[] = [];
    for await (const batch of client.batches.list({ limit: 2 })) listed.push(batch.id);
    expect(listed).toEqual([...ids].reverse());

    const stranger = openai(sim, "sk-another-tenant-key");
    await expect(stranger.batches.retrieve(ids[0]!)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const strangers: string[] = [];
    for await (const batch of stranger.batches.list()) strangers.push(batch.id);
    expect(strangers).toEqual([]);
    const file = await upload(client, openaiLines(1));
    await expect(stranger.files.content(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe("the simulator's Anthropic Message Batches API", () => {
  const requests = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      custom_id: `req-${i}`,
      params: {
        model: "claude-haiku-4-5",
        max_tokens: 20,
        messages: [{ role: "user" as const, content: question(i) }],
      },
    }));

  async function ended(client: Anthropic, id: string) {
    for (;;) {
      const batch = await client.messages.batches.retrieve(id);
      if (batch.processing_status === "ended") return batch;
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  }

  async function results(client: Anthropic, id: string) {
    const out: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
    for await (const line of await client.messages.batches.results(id)) out.push(line);
    return out;
  }

  it("create + retrieve + results: every request answered once, right, in the real shapes", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 300 } });
    const client = anthropic(sim);
    const created = await client.messages.batches.create({ requests: requests(25) });
    expect(created).toMatchObject({
      type: "message_batch",
      processing_status: "in_progress",
      request_counts: { processing: 25, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
      results_url: null,
      ended_at: null,
      archived_at: null,
      cancel_initiated_at: null,
    });
    expect(created.id).toMatch(/^msgbatch_/);
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(86_400_000);
    const done = await ended(client, created.id);
    expect(done.request_counts).toEqual({
      processing: 0,
      succeeded: 25,
      errored: 0,
      canceled: 0,
      expired: 0,
    });
    expect(done.results_url).toBe(`${sim.origin}/v1/messages/batches/${created.id}/results`);
    const lines = await results(client, created.id);
    expect(lines.map((l) => l.custom_id).sort()).toEqual(
      requests(25)
        .map((r) => r.custom_id)
        .sort(),
    );
    for (const line of lines) {
      const i = Number(line.custom_id.slice(4));
      expect(line.result.type).toBe("succeeded");
      if (line.result.type !== "succeeded") continue;
      const block = line.result.message.content[0]!;
      expect(block.type).toBe("text");
      if (block.type === "text")
        expect(
          block.text.startsWith(expectedMarker([{ role: "user", content: question(i) }])),
        ).toBe(true);
      expect(line.result.message.usage.output_tokens).toBeGreaterThan(0);
    }
    expect(sim.stats({ timeline: false }).batch.submitted).toEqual({ openai: 0, anthropic: 1 });
  });

  it("expired, errored (an invalid request and a server error) and their real result shapes", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 1000, expiryMs: 500, pError: 0.3 } });
    const client = anthropic(sim);
    const invalid = {
      custom_id: "no-max-tokens",
      params: { model: "claude-haiku-4-5", messages: [{ role: "user", content: "hi" }] },
    };
    const batch = await client.messages.batches.create({
      requests: [
        ...requests(20),
        invalid as (typeof requests extends (n: number) => infer R ? R : never)[number],
      ],
    });
    const done = await ended(client, batch.id);
    const lines = await results(client, batch.id);
    expect(lines).toHaveLength(21);
    const byType = (type: string) => lines.filter((l) => l.result.type === type);
    expect(byType("expired").length).toBeGreaterThan(0);
    expect(byType("errored").length).toBeGreaterThan(0);
    expect(done.request_counts).toEqual({
      processing: 0,
      succeeded: byType("succeeded").length,
      errored: byType("errored").length,
      canceled: 0,
      expired: byType("expired").length,
    });
    for (const line of byType("errored")) {
      if (line.result.type !== "errored") continue;
      expect(line.result.error.type).toBe("error");
      expect(["api_error", "invalid_request_error"]).toContain(line.result.error.error.type);
    }
    expect(byType("expired").every((l) => Object.keys(l.result).join() === "type")).toBe(true);
  });

  it("refuses what the real API refuses: no requests, a bad or duplicate custom_id, too many, too large", async () => {
    const sim = await ws.simulator({ batch: { maxRequests: 3, maxBytes: 2000 } });
    const client = anthropic(sim);
    await expect(client.messages.batches.create({ requests: [] })).rejects.toBeInstanceOf(
      Anthropic.BadRequestError,
    );
    const [a, b] = requests(2);
    await expect(
      client.messages.batches.create({ requests: [{ ...a!, custom_id: "has space" }] }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(
      client.messages.batches.create({ requests: [a!, { ...b!, custom_id: a!.custom_id }] }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(client.messages.batches.create({ requests: requests(4) })).rejects.toMatchObject({
      status: 400,
    });
    const long = requests(1).map((r) => ({
      ...r,
      params: { ...r.params, messages: [{ role: "user" as const, content: "x".repeat(3000) }] },
    }));
    await expect(client.messages.batches.create({ requests: long })).rejects.toMatchObject({
      status: 413,
    });
    expect(sim.stats({ timeline: false }).batch.submitted.anthropic).toBe(0);
  });

  it("cancel, list newest first, delete once ended; other keys see nothing", async () => {
    const sim = await ws.simulator({ batch: { completionMs: 60_000 } });
    const client = anthropic(sim);
    const first = await client.messages.batches.create({ requests: requests(3) });
    const second = await client.messages.batches.create({ requests: requests(3) });
    const listed: string[] = [];
    for await (const batch of client.messages.batches.list({ limit: 1 })) listed.push(batch.id);
    expect(listed).toEqual([second.id, first.id]);
    await expect(client.messages.batches.delete(first.id)).rejects.toMatchObject({ status: 400 });
    const canceled = await client.messages.batches.cancel(first.id);
    expect(canceled.cancel_initiated_at).not.toBeNull();
    const done = await ended(client, first.id);
    expect(done.request_counts.canceled).toBe(3);
    const lines = await results(client, first.id);
    expect(lines.every((l) => l.result.type === "canceled")).toBe(true);
    expect(await client.messages.batches.delete(first.id)).toEqual({
      id: first.id,
      type: "message_batch_deleted",
    });
    await expect(client.messages.batches.retrieve(first.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
    const stranger = anthropic(sim, "sk-ant-another-tenant");
    await expect(stranger.messages.batches.retrieve(second.id)).rejects.toBeInstanceOf(
      Anthropic.NotFoundError,
    );
  });
});
