// What the simulator's batch and file endpoints share: reading a bounded body, answering JSON or
// an error in each provider's shape, ids, and whose objects a request may see (an API key's own,
// as the providers scope files and batches to an organisation or workspace).

import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/** A request's API key, hashed: files and batches are visible only to the key that made them. */
export function ownerOf(req: IncomingMessage): string {
  const auth = req.headers.authorization;
  const key =
    typeof auth === "string" && auth.startsWith("Bearer ")
      ? auth.slice(7)
      : (req.headers["x-api-key"] as string | undefined);
  if (!key) return "";
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** Reads the body up to `limit` bytes; resolves `undefined` (draining the rest) past it. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > limit ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

export function sendBytes(res: ServerResponse, contentType: string, body: Buffer | string): void {
  res.writeHead(200, {
    "content-type": contentType,
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** An OpenAI error: `{error: {message, type, param, code}}`. */
export function sendOpenAIError(
  res: ServerResponse,
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null,
  type = "invalid_request_error",
): void {
  sendJson(res, status, { error: { message, type, param, code } });
}

/** An Anthropic error: `{type: "error", error: {type, message}, request_id}`. */
export function sendAnthropicError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
): void {
  const requestId = `req_${randomId(24)}`;
  res.setHeader("request-id", requestId);
  sendJson(res, status, { type: "error", error: { type, message }, request_id: requestId });
}

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `length` random base-62 characters, for ids shaped like the providers'. */
export function randomId(length: number): string {
  const bytes = randomBytes(length);
  let id = "";
  for (const byte of bytes) id += ALPHABET[byte % 62];
  return id;
}

/** A positive integer query parameter, clamped to `max`; `fallback` when absent or invalid. */
export function limitParam(value: string | null, fallback: number, max: number): number {
  const n = value === null ? Number.NaN : Number(value);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, max) : fallback;
}

/** Seconds since the epoch, as the OpenAI API writes times. */
export function unixSeconds(epochMs: number): number {
  return Math.floor(epochMs / 1000);
}
