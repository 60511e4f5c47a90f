// The simulator's batch APIs, routed: OpenAI Files (`/v1/files`) and Batch (`/v1/batches`),
// Anthropic Message Batches (`/v1/messages/batches`). A batch's state is computed from the clock
// when it is asked for (no timers); its results are written once, when it is first seen ended.
// The simulator hands a request here when `handles` says so.

import type { IncomingMessage, ServerResponse } from "node:http";
import {
  anthropicBatchAction,
  createAnthropicBatch,
  listAnthropicBatches,
  settleAnthropicBatch,
} from "./anthropic-batches.ts";
import type { BatchContext } from "./batch-context.ts";
import { ownerOf, sendAnthropicError, sendOpenAIError } from "./batch-http.ts";
import { type BatchStats, emptyBatchStats, type SimBatch } from "./batch-store.ts";
import {
  cancelOpenAIBatch,
  createOpenAIBatch,
  listOpenAIBatches,
  retrieveOpenAIBatch,
  settleOpenAIBatch,
} from "./openai-batches.ts";
import { FileStore } from "./openai-files.ts";
import type { SimConfig } from "./sim-config.ts";

export type { BatchStats };

export type BatchApiOptions = {
  config: SimConfig;
  /** Monotonic ms. */
  now: () => number;
  /** Epoch ms. @default Date.now */
  wallNow?: () => number;
  /** The simulator's origin, read when a batch's `results_url` is written. */
  origin: () => string;
};

const FILES = /^\/v1\/files(?:\/([^/]+)(\/content)?)?$/;
const OPENAI_BATCHES = /^\/v1\/batches(?:\/([^/]+)(\/cancel)?)?$/;
const ANTHROPIC_BATCHES = /^\/v1\/messages\/batches(?:\/([^/]+)(?:\/(cancel|results))?)?$/;

export class BatchApi {
  readonly #context: BatchContext;
  #stats: BatchStats = emptyBatchStats();
  #salt = 0;

  constructor(options: BatchApiOptions) {
    const wallNow = options.wallNow ?? Date.now;
    const batches = new Map<string, SimBatch>();
    const files = new FileStore(wallNow);
    const api = this;
    this.#context = {
      config: options.config,
      now: options.now,
      wallNow,
      origin: options.origin,
      files,
      batches,
      get stats() {
        return api.#stats;
      },
      nextSalt: () => ++this.#salt,
    };
  }

  /** Whether `path` is one of the batch or file endpoints. */
  handles(path: string): boolean {
    return (
      path.startsWith("/v1/files") ||
      path.startsWith("/v1/batches") ||
      path.startsWith("/v1/messages/batches")
    );
  }

  /** Answers one request to a batch or file endpoint. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void {
    void this.#route(req, res, path, query).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const message = `The simulator failed: ${(error as Error).message}`;
      if (path.startsWith("/v1/messages")) sendAnthropicError(res, 500, "api_error", message);
      else sendOpenAIError(res, 500, message, null, null, "server_error");
    });
  }

  async #route(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const context = this.#context;
    const method = req.method ?? "GET";
    const owner = ownerOf(req);
    let m = ANTHROPIC_BATCHES.exec(path);
    if (m) {
      const [, id, action] = m;
      if (id === undefined) {
        if (method === "POST") return createAnthropicBatch(context, req, res, owner);
        if (method === "GET")
          return drained(req, () => listAnthropicBatches(context, res, query, owner));
      } else {
        const wanted = action === "cancel" ? "POST" : action === "results" ? "GET" : undefined;
        if (
          method === wanted ||
          (wanted === undefined && (method === "GET" || method === "DELETE"))
        )
          return drained(req, () =>
            anthropicBatchAction(context, res, method, id, (action ?? "") as "", owner),
          );
      }
      return drained(req, () =>
        sendAnthropicError(res, 404, "not_found_error", `Unknown request URL: ${method} ${path}`),
      );
    }
    m = OPENAI_BATCHES.exec(path);
    if (m) {
      const [, id, cancel] = m;
      if (id === undefined && method === "POST") return createOpenAIBatch(context, req, res, owner);
      if (id === undefined && method === "GET")
        return drained(req, () => listOpenAIBatches(context, res, query, owner));
      if (id !== undefined && cancel !== undefined && method === "POST")
        return drained(req, () => cancelOpenAIBatch(context, res, id, owner));
      if (id !== undefined && cancel === undefined && method === "GET")
        return drained(req, () => retrieveOpenAIBatch(context, res, id, owner));
      return drained(req, () => notFound(res, method, path));
    }
    m = FILES.exec(path);
    if (m) {
      const [, id, content] = m;
      if (id === undefined && method === "POST") {
        await context.files.upload(req, res, owner);
        if (res.statusCode === 200) this.#stats.filesUploaded += 1;
        return;
      }
      if (id === undefined && method === "GET")
        return drained(req, () => context.files.list(res, query, owner));
      if (id !== undefined && (method === "GET" || (method === "DELETE" && !content)))
        return drained(req, () => context.files.one(res, method, id, content !== undefined, owner));
    }
    return drained(req, () => notFound(res, method, path));
  }

  /** The counters, after writing the results of every batch that has ended by now. */
  stats(): BatchStats {
    const t = this.#context.now();
    for (const batch of this.#context.batches.values())
      if (batch.provider === "openai") settleOpenAIBatch(this.#context, batch, t);
      else settleAnthropicBatch(this.#context, batch, t);
    return structuredClone(this.#stats);
  }

  /** Zeroes the counters (the files and batches stay). */
  resetStats(): void {
    this.stats(); // what ended before the reset is counted before it, not after
    this.#stats = emptyBatchStats();
  }
}

function notFound(res: ServerResponse, method: string, path: string): void {
  sendOpenAIError(res, 404, `Unknown request URL: ${method} ${path}`, null, "unknown_url");
}

/** Runs `answer` once the request body (unused) has been read. */
function drained(req: IncomingMessage, answer: () => void): Promise<void> {
  return new Promise((resolve) => {
    if (req.readableEnded) {
      answer();
      resolve();
      return;
    }
    req.on("end", () => {
      answer();
      resolve();
    });
    req.resume();
  });
}
