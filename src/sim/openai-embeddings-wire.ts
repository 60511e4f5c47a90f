// The OpenAI embeddings wire format: `POST /v1/embeddings` bodies (text, texts, token ids), the
// list of vectors (float or base64, as the official SDK asks by default), and the usage. Errors
// and rate-limit headers are the chat endpoint's.

import { countTokens } from "gpt-tokenizer";
import { embeddingBase64, expectedEmbedding } from "./embedding-vector.ts";
import { openaiError, openaiRateLimitHeaders } from "./openai-wire.ts";
import type { BadRequest, ChatRequest, CheckedBody, StreamFormat, Wire } from "./wire.ts";
import { checkBody, isBadRequest, optionalCount } from "./wire.ts";

/** Most inputs in one request, as OpenAI documents. */
export const MAX_EMBEDDING_INPUTS = 2048;
/** Most tokens in one input (the embedding models' context). */
export const MAX_EMBEDDING_INPUT_TOKENS = 8192;
/** Most tokens summed over one request's inputs. */
export const MAX_EMBEDDING_REQUEST_TOKENS = 300_000;

/** The vector length a model answers with when the request sets no `dimensions`. */
export function defaultDimensions(model: string): number {
  return model.includes("large") ? 3072 : 1536;
}

const INVALID_INPUT =
  "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";

function isTokenIds(value: unknown): value is number[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === "number" && Number.isInteger(v) && v >= 0)
  );
}

// The inputs as texts with their token counts; token ids count one token each.
function readInputs(input: unknown): { texts: string[]; tokens: number[] } | BadRequest {
  if (input === undefined || input === null) {
    return { error: "'input' is a required property", param: "input" };
  }
  let items: unknown[];
  if (typeof input === "string" || isTokenIds(input)) items = [input];
  else if (Array.isArray(input)) items = input;
  else return { error: INVALID_INPUT, param: "input" };
  if (items.length === 0) return { error: INVALID_INPUT, param: "input" };
  if (items.length > MAX_EMBEDDING_INPUTS) {
    return {
      error: `Too many inputs. The max number of inputs is ${MAX_EMBEDDING_INPUTS}. We recommend sending fewer inputs per request.`,
      param: "input",
    };
  }
  const texts: string[] = [];
  const tokens: number[] = [];
  for (const item of items) {
    let text: string;
    let count: number;
    if (typeof item === "string" && item !== "") {
      text = item;
      count = countTokens(item);
    } else if (isTokenIds(item)) {
      text = item.join(" ");
      count = item.length;
    } else return { error: INVALID_INPUT, param: "input" };
    if (count > MAX_EMBEDDING_INPUT_TOKENS) {
      return {
        error: `This model's maximum context length is ${MAX_EMBEDDING_INPUT_TOKENS} tokens, however you requested ${count} tokens (${count} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`,
        param: null,
      };
    }
    texts.push(text);
    tokens.push(count);
  }
  const total = tokens.reduce((a, b) => a + b, 0);
  if (total > MAX_EMBEDDING_REQUEST_TOKENS) {
    return {
      error: `Requested ${total} tokens, max ${MAX_EMBEDDING_REQUEST_TOKENS} tokens per request`,
      param: null,
      code: "max_tokens_per_request",
    };
  }
  return { texts, tokens };
}

export const openaiEmbeddingsWire: Wire = {
  path: "openai",
  endpoint: "embeddings",
  requestIdHeader: "x-request-id",
  idPrefix: "emb-",

  parse(body) {
    const invalid = checkBody(body, "you must provide a model parameter");
    if (invalid) return invalid;
    const b = body as CheckedBody;
    const inputs = readInputs(b.input);
    if ("error" in inputs) return inputs;
    const format = b.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") {
      return {
        error: `Invalid value for 'encoding_format': ${JSON.stringify(format)}. Supported values are: 'float' and 'base64'.`,
        param: "encoding_format",
        code: "invalid_value",
      };
    }
    const most = defaultDimensions(b.model);
    const dimensions = optionalCount(b.dimensions, "dimensions");
    if (isBadRequest(dimensions)) return dimensions;
    if (dimensions !== undefined && dimensions > most) {
      return {
        error: `This model does not support specifying dimensions larger than ${most}.`,
        param: "dimensions",
      };
    }
    const request: ChatRequest = {
      model: b.model,
      // Each input counts as a user message for the marker (the timeline's per-prompt key).
      messages: inputs.texts.map((content) => ({ role: "user", content })),
      system: undefined,
      stream: false,
      includeUsage: true,
      maxTokens: 0,
      promptTokens: inputs.tokens.reduce((a, b) => a + b, 0),
      embedding: {
        texts: inputs.texts,
        dimensions: dimensions ?? most,
        base64: format === "base64",
      },
    };
    return request;
  },

  completion(answer) {
    const embedding = answer.request.embedding!;
    const data = embedding.texts.map((text, index) => {
      const vector = expectedEmbedding(text, embedding.dimensions);
      return {
        object: "embedding",
        index,
        embedding: embedding.base64 ? embeddingBase64(vector) : Array.from(vector),
      };
    });
    return JSON.stringify({
      object: "list",
      data,
      model: answer.model,
      usage: { prompt_tokens: answer.promptTokens, total_tokens: answer.promptTokens },
    });
  },

  stream(): StreamFormat {
    // parse() never sets `stream` on this endpoint, so the simulator never asks for a stream.
    throw new Error("the embeddings endpoint does not stream");
  },

  error: openaiError,
  rateLimitHeaders: openaiRateLimitHeaders,
};
