// One line of a batch input file -> one request (or the reason it is not one). The three line
// shapes Salvo accepts, and their validation, live here; the reader only streams and numbers.

import { InputLineError } from "../errors.ts";
import { jsonTextTooDeep, MAX_JSON_DEPTH } from "../providers/json-depth.ts";
import type { ProviderRequest } from "../providers/provider.ts";

/**
 * The shape of a batch input file, detected from its first valid line:
 * - `openai-batch`: the OpenAI Batch envelope `{custom_id, method: "POST", url: "/v1/...", body}`;
 * - `openai-body`: a bare request body with optional `metadata`, the OpenAI cookbook
 *   `api_request_parallel_processor` format `{model, messages, ..., metadata?}`;
 * - `anthropic-batch`: the Anthropic Message Batches line `{custom_id, params: {...}}`.
 */
export type InputShape = "openai-batch" | "openai-body" | "anthropic-batch";

/** A valid input line, ready to call. */
export type BatchItem = {
  /** 0-based position among the file's non-blank lines; output line `index + 1` is its answer. */
  index: number;
  /** The 1-based line of the input file. */
  line: number;
  /**
   * The envelope's `custom_id`; for `openai-body`, `metadata.custom_id` when it is a string, else
   * `line-<n>` with `n` the 1-based file line.
   */
  customId: string;
  provider: "openai" | "anthropic";
  /** The request for the provider adapter; `path` has no `/v1` prefix. */
  request: ProviderRequest;
  /** `openai-body` only: the line's `metadata`, removed from the body sent. */
  metadata?: Record<string, unknown> | undefined;
};

/** An input line that is not a valid request; it still gets an output line at its position. */
export type InvalidLine = {
  index: number;
  line: number;
  /** The line's `custom_id` when one could be read, so the output line can still be joined. */
  customId: string | undefined;
  error: InputLineError;
};

export type InputEntry = BatchItem | InvalidLine;

export function isInvalid(entry: InputEntry): entry is InvalidLine {
  return "error" in entry;
}

/** What `parseInputLine` needs besides the text. */
export type LineContext = {
  file: string;
  line: number;
  index: number;
  /** The file's shape once detected; `undefined` until the first valid line. */
  shape: InputShape | undefined;
  /** The line the shape was detected from, for the mismatch message. */
  shapeLine: number | undefined;
  /** Filled into a body without `model`; without it, such a line is invalid. */
  defaultModel: string | undefined;
};

const OPENAI_URLS = new Map([
  ["/v1/chat/completions", "/chat/completions"],
  ["/v1/embeddings", "/embeddings"],
  ["/v1/responses", "/responses"],
  ["/v1/completions", "/completions"],
]);

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Guesses which shape a parsed line is meant to be, from its top-level keys alone. */
export function guessShape(value: Obj): InputShape {
  if ("params" in value) return "anthropic-batch";
  if ("body" in value || "url" in value || "method" in value) return "openai-batch";
  return "openai-body";
}

/** Thrown inside this module only; turned into an InputLineError with the line's place. */
class Invalid {
  readonly field: string;
  readonly expected: string;
  readonly got: unknown;
  readonly gotText: string | undefined;
  constructor(field: string, expected: string, got: unknown, gotText?: string) {
    this.field = field;
    this.expected = expected;
    this.got = got;
    this.gotText = gotText;
  }
}

/** Each message an object with a role; its content text, parts or null (the estimate reads both). */
function needMessages(body: Obj, prefix: string): void {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw new Invalid(`${prefix}.messages`, "a non-empty array of messages", messages);
  messages.forEach((message: unknown, i) => {
    const at = `${prefix}.messages[${i}]`;
    if (!isObject(message)) throw new Invalid(at, "a message object {role, content}", message);
    if (typeof message.role !== "string" || message.role === "")
      throw new Invalid(`${at}.role`, "a non-empty string", message.role);
    const content = message.content;
    if (
      !(
        content === undefined ||
        content === null ||
        typeof content === "string" ||
        Array.isArray(content)
      )
    )
      throw new Invalid(`${at}.content`, "a string, an array of content parts, or null", content);
  });
}

/**
 * Fields Salvo itself reads to reserve rate budget and decide what may be shared, checked here so
 * that a bad value is an error at its line and not a failure later in the run.
 */
function needBodyFields(body: Obj, prefix: string, tokenFields: readonly string[]): void {
  // A batch line is answered whole, as the providers' batch APIs answer it: they refuse
  // `stream: true`. A stream would be paid for and end without the usage the budget counts.
  if (body.stream !== undefined && body.stream !== false)
    throw new Invalid(
      `${prefix}.stream`,
      "false or absent (batch lines are not streamed)",
      body.stream,
    );
  for (const field of tokenFields) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (!Number.isSafeInteger(value) || (value as number) < 1)
      throw new Invalid(`${prefix}.${field}`, "a whole number of tokens >= 1", value);
  }
  const n = body.n;
  if (
    n !== undefined &&
    n !== null &&
    !(Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 128)
  )
    throw new Invalid(`${prefix}.n`, "a whole number from 1 to 128", n);
}

/** OpenAI's output caps: chat (`max_tokens`, `max_completion_tokens`), Responses (`max_output_tokens`). */
const OPENAI_TOKEN_FIELDS = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/** What `/embeddings` embeds: a text, a token array, or a non-empty list of either. */
function needEmbeddingInput(body: Obj, prefix: string): void {
  const input = body.input;
  const tokens = (v: unknown) =>
    Array.isArray(v) && v.length > 0 && v.every((t) => Number.isSafeInteger(t) && t >= 0);
  const ok =
    (typeof input === "string" && input !== "") ||
    tokens(input) ||
    (Array.isArray(input) &&
      input.length > 0 &&
      input.every((item) => (typeof item === "string" && item !== "") || tokens(item)));
  if (!ok)
    throw new Invalid(
      `${prefix}.input`,
      "the text(s) to embed: a non-empty string, a token array, or a non-empty list of either",
      input,
    );
}

/** Returns the body with `model` filled in from the default, or throws naming the field. */
function withModel(body: Obj, prefix: string, defaultModel: string | undefined): Obj {
  const model = body.model;
  if (model === undefined) {
    if (defaultModel === undefined)
      throw new Invalid(`${prefix}.model`, "a model name (or a default model, --model)", model);
    return { ...body, model: defaultModel };
  }
  if (typeof model !== "string" || model === "")
    throw new Invalid(`${prefix}.model`, "a non-empty string", model);
  return body;
}

function needCustomId(value: Obj): string {
  const id = value.custom_id;
  if (typeof id !== "string" || id === "") throw new Invalid("custom_id", "a non-empty string", id);
  return id;
}

type Parsed = Omit<BatchItem, "index" | "line">;

function parseOpenAIBatch(value: Obj, defaultModel: string | undefined): Parsed {
  const customId = needCustomId(value);
  if (value.method !== "POST") throw new Invalid("method", '"POST"', value.method);
  const path = typeof value.url === "string" ? OPENAI_URLS.get(value.url) : undefined;
  if (path === undefined)
    throw new Invalid("url", `one of ${[...OPENAI_URLS.keys()].join(", ")}`, value.url);
  if (!isObject(value.body)) throw new Invalid("body", "a JSON object", value.body);
  let body = value.body;
  if (path === "/chat/completions") needMessages(body, "body");
  if (path === "/embeddings") needEmbeddingInput(body, "body");
  needBodyFields(body, "body", OPENAI_TOKEN_FIELDS);
  body = withModel(body, "body", defaultModel);
  return { customId, provider: "openai", request: { path, body } };
}

function parseOpenAIBody(value: Obj, line: number, defaultModel: string | undefined): Parsed {
  const { metadata, ...rest } = value;
  if (metadata !== undefined && !isObject(metadata))
    throw new Invalid("metadata", "a JSON object", metadata);
  const embeddings = rest.input !== undefined && rest.messages === undefined;
  const path = embeddings ? "/embeddings" : "/chat/completions";
  if (embeddings) needEmbeddingInput(rest, "body");
  else needMessages(rest, "body");
  needBodyFields(rest, "body", OPENAI_TOKEN_FIELDS);
  const body = withModel(rest, "body", defaultModel);
  const id = metadata?.custom_id;
  if (id !== undefined && (typeof id !== "string" || id === ""))
    throw new Invalid("metadata.custom_id", "a non-empty string", id);
  return {
    customId: id ?? `line-${line}`,
    provider: "openai",
    request: { path, body },
    metadata,
  };
}

function parseAnthropicBatch(value: Obj, defaultModel: string | undefined): Parsed {
  const customId = needCustomId(value);
  const params = value.params;
  if (!isObject(params)) throw new Invalid("params", "a JSON object", params);
  const maxTokens = params.max_tokens;
  if (!Number.isSafeInteger(maxTokens) || (maxTokens as number) <= 0)
    throw new Invalid("params.max_tokens", "an integer > 0", maxTokens);
  needMessages(params, "params");
  needBodyFields(params, "params", []);
  const body = withModel(params, "params", defaultModel);
  return { customId, provider: "anthropic", request: { path: "/messages", body } };
}

/**
 * Parses and validates one non-blank line. Returns the entry and, when the line is valid and the
 * file's shape was not yet known, the shape it establishes. A valid line of another shape than
 * the file's is invalid. Never throws for bad input.
 */
export function parseInputLine(
  text: string,
  context: LineContext,
): { entry: InputEntry; shape: InputShape | undefined } {
  const { file, line, index } = context;
  let customId: string | undefined;
  try {
    // Checked before parsing: a deeper value would overflow the stack of the recursive code
    // downstream (canonical JSON, the SDK's JSON.stringify), not fail here.
    const tooDeep = jsonTextTooDeep(text);
    if (tooDeep !== -1)
      throw new Invalid(
        "JSON",
        `JSON nested at most ${MAX_JSON_DEPTH} levels deep`,
        undefined,
        `deeper nesting at column ${tooDeep + 1}`,
      );
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new Invalid(
        "JSON",
        "a JSON object",
        undefined,
        `invalid JSON (${(error as Error).message})`,
      );
    }
    if (!isObject(value)) throw new Invalid("line", "a JSON object", value);
    if (typeof value.custom_id === "string") customId = value.custom_id;
    else if (isObject(value.metadata) && typeof value.metadata.custom_id === "string")
      customId = value.metadata.custom_id;
    const shape = guessShape(value);
    if (context.shape !== undefined && shape !== context.shape)
      throw new Invalid(
        "line",
        `a ${context.shape} line like line ${context.shapeLine} (one shape per file)`,
        undefined,
        `a ${shape} line`,
      );
    const parsed =
      shape === "openai-batch"
        ? parseOpenAIBatch(value, context.defaultModel)
        : shape === "anthropic-batch"
          ? parseAnthropicBatch(value, context.defaultModel)
          : parseOpenAIBody(value, line, context.defaultModel);
    return { entry: { index, line, ...parsed }, shape: context.shape ?? shape };
  } catch (thrown) {
    if (!(thrown instanceof Invalid)) throw thrown;
    const error = new InputLineError({
      file,
      line,
      field: thrown.field,
      expected: thrown.expected,
      got: thrown.got,
      ...(thrown.gotText === undefined ? {} : { gotText: thrown.gotText }),
    });
    return { entry: { index, line, customId, error }, shape: undefined };
  }
}
