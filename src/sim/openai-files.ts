// The simulator's OpenAI Files API, as much as the Batch API needs: upload (multipart, purpose
// `batch`), retrieve, list, content and delete, and the output and error files batches write
// (purpose `batch_output`). Files live in memory, visible only to the API key that made them.

import type { IncomingMessage, ServerResponse } from "node:http";
import {
  limitParam,
  randomId,
  readBody,
  sendBytes,
  sendJson,
  sendOpenAIError,
  unixSeconds,
} from "./batch-http.ts";

/** Purposes the Files API accepts on upload. */
const UPLOAD_PURPOSES = new Set([
  "assistants",
  "batch",
  "fine-tune",
  "vision",
  "user_data",
  "evals",
]);

/** Files with purpose `batch` (and the batch outputs) expire after 30 days by default. */
const BATCH_FILE_TTL_S = 30 * 24 * 60 * 60;

/** Largest upload accepted, bytes (OpenAI's per-file limit). */
const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

export type SimFile = {
  id: string;
  owner: string;
  bytes: number;
  /** Unix seconds. */
  createdAt: number;
  filename: string;
  purpose: string;
  content: Buffer;
};

/** The `File` object the API answers with. */
export function fileObject(file: SimFile) {
  const batchy = file.purpose === "batch" || file.purpose === "batch_output";
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: file.createdAt,
    expires_at: batchy ? file.createdAt + BATCH_FILE_TTL_S : null,
    filename: file.filename,
    purpose: file.purpose,
    status: "processed",
    status_details: null,
  };
}

export class FileStore {
  readonly #files = new Map<string, SimFile>();
  readonly #wallNow: () => number;

  constructor(wallNow: () => number) {
    this.#wallNow = wallNow;
  }

  /** Stores a file; returns it. */
  add(owner: string, filename: string, purpose: string, content: Buffer): SimFile {
    const file: SimFile = {
      id: `file-${randomId(22)}`,
      owner,
      bytes: content.length,
      createdAt: unixSeconds(this.#wallNow()),
      filename,
      purpose,
      content,
    };
    this.#files.set(file.id, file);
    return file;
  }

  /** The file if it exists and `owner` may see it. */
  get(id: string, owner: string): SimFile | undefined {
    const file = this.#files.get(id);
    return file !== undefined && file.owner === owner ? file : undefined;
  }

  /** `POST /v1/files`. */
  async upload(req: IncomingMessage, res: ServerResponse, owner: string): Promise<void> {
    const type = req.headers["content-type"] ?? "";
    if (!type.startsWith("multipart/form-data")) {
      req.resume();
      sendOpenAIError(
        res,
        400,
        "The request must be multipart/form-data with `file` and `purpose`.",
      );
      return;
    }
    const body = await readBody(req, MAX_UPLOAD_BYTES + 1024 * 1024);
    if (body === undefined) {
      sendOpenAIError(res, 413, `File too large: the limit is ${MAX_UPLOAD_BYTES} bytes.`, "file");
      return;
    }
    let form: FormData;
    try {
      // Node's fetch Request parses multipart bodies: no parser of our own.
      form = await new Request("http://sim.local/", {
        method: "POST",
        headers: { "content-type": type },
        body,
      }).formData();
    } catch {
      sendOpenAIError(res, 400, "The multipart body could not be parsed.");
      return;
    }
    const purpose = form.get("purpose");
    const part = form.get("file");
    if (typeof purpose !== "string" || purpose === "") {
      sendOpenAIError(res, 400, "'purpose' is a required property", "purpose");
      return;
    }
    if (!UPLOAD_PURPOSES.has(purpose)) {
      sendOpenAIError(
        res,
        400,
        `'${purpose}' is not one of ${[...UPLOAD_PURPOSES].map((p) => `'${p}'`).join(", ")} - 'purpose'`,
        "purpose",
      );
      return;
    }
    if (part === null || typeof part === "string") {
      sendOpenAIError(res, 400, "'file' is a required property", "file");
      return;
    }
    const filename = part.name || "upload";
    if (purpose === "batch" && !filename.endsWith(".jsonl")) {
      sendOpenAIError(res, 400, "Invalid file format for Batch API. Must be .jsonl", "file");
      return;
    }
    const file = this.add(owner, filename, purpose, Buffer.from(await part.arrayBuffer()));
    sendJson(res, 200, fileObject(file));
  }

  /** `GET /v1/files/{id}`, `/content`, `DELETE /v1/files/{id}`. */
  one(res: ServerResponse, method: string, id: string, content: boolean, owner: string): void {
    const file = this.get(id, owner);
    if (file === undefined) {
      sendOpenAIError(res, 404, `No such File object: ${id}`, "id");
      return;
    }
    if (method === "DELETE" && !content) {
      this.#files.delete(id);
      sendJson(res, 200, { id, object: "file", deleted: true });
      return;
    }
    if (content) sendBytes(res, "application/octet-stream", file.content);
    else sendJson(res, 200, fileObject(file));
  }

  /** `GET /v1/files?purpose=&order=&after=&limit=`. */
  list(res: ServerResponse, query: URLSearchParams, owner: string): void {
    const purpose = query.get("purpose");
    const order = query.get("order") === "asc" ? "asc" : "desc";
    const limit = limitParam(query.get("limit"), 10_000, 10_000);
    let files = [...this.#files.values()].filter(
      (f) => f.owner === owner && (purpose === null || f.purpose === purpose),
    );
    if (order === "desc") files.reverse();
    const after = query.get("after");
    if (after !== null) {
      const at = files.findIndex((f) => f.id === after);
      files = at < 0 ? [] : files.slice(at + 1);
    }
    const page = files.slice(0, limit);
    sendJson(res, 200, {
      object: "list",
      data: page.map(fileObject),
      first_id: page[0]?.id ?? null,
      last_id: page.at(-1)?.id ?? null,
      has_more: files.length > page.length,
    });
  }
}
