// The OpenAI Responses API wire format: `POST /v1/responses` bodies (a string or a list of input
// items, `instructions`, `max_output_tokens`), the response object, and its typed stream events
// (`response.created` ... `response.completed`), shaped as the official SDK parses them. Errors
// and rate-limit headers are the chat endpoint's.

import type { SimContentPart, SimMessage } from "./marker.ts";
import { openaiError, openaiRateLimitHeaders } from "./openai-wire.ts";
import type { Answer, BadRequest, ChatRequest, CheckedBody, StreamFormat, Wire } from "./wire.ts";
import { checkBody, isBadRequest } from "./wire.ts";

const ROLES = ["user", "assistant", "system", "developer"] as const;

/** The smallest `max_output_tokens` the API accepts. */
export const MIN_OUTPUT_TOKENS = 16;

function missing(name: string): BadRequest {
  return {
    error: `Missing required parameter: '${name}'.`,
    param: name,
    code: "missing_required_parameter",
  };
}

function invalidType(param: string, expected: string): BadRequest {
  return {
    error: `Invalid type for '${param}': expected ${expected}.`,
    param,
    code: "invalid_type",
  };
}

// A message's content as the simulator's parts: input_text / output_text count as text, so the
// same prompt has the same marker as on the chat endpoint.
function readContent(content: unknown, param: string): SimMessage["content"] | BadRequest {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return invalidType(param, "a string or an array of content parts");
  const parts: SimContentPart[] = [];
  for (let i = 0; i < content.length; i++) {
    const part: unknown = content[i];
    const where = `${param}[${i}]`;
    if (part === null || typeof part !== "object") return invalidType(where, "an object");
    const { type, text } = part as { type?: unknown; text?: unknown };
    if (typeof type !== "string") return missing(`${where}.type`);
    if (type === "input_text" || type === "output_text") {
      if (typeof text !== "string") return missing(`${where}.text`);
      parts.push({ type: "text", text });
    } else parts.push({ type });
  }
  return parts;
}

// The input items as messages. Tool calls and their outputs count with their text; other item
// kinds (reasoning, item references) carry none.
function readInput(input: unknown): SimMessage[] | BadRequest {
  if (input === undefined || input === null) return missing("input");
  if (typeof input === "string") return [{ role: "user", content: input }];
  if (!Array.isArray(input)) return invalidType("input", "a string or an array of input items");
  if (input.length === 0) {
    return {
      error:
        "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      param: "input",
      code: "empty_array",
    };
  }
  const messages: SimMessage[] = [];
  for (let i = 0; i < input.length; i++) {
    const item: unknown = input[i];
    const where = `input[${i}]`;
    if (item === null || typeof item !== "object") return invalidType(where, "an object");
    const it = item as Record<string, unknown>;
    const type = it.type ?? "message";
    if (type === "message") {
      if (typeof it.role !== "string" || !(ROLES as readonly string[]).includes(it.role)) {
        return {
          error: `Invalid value: ${JSON.stringify(it.role ?? null)}. Supported values are: 'assistant', 'system', 'developer', and 'user'.`,
          param: `${where}.role`,
          code: "invalid_value",
        };
      }
      const content = readContent(it.content, `${where}.content`);
      if (isBadRequest(content)) return content;
      messages.push({ role: it.role, content });
    } else if (type === "function_call_output") {
      messages.push({ role: "tool", content: typeof it.output === "string" ? it.output : "" });
    } else if (type === "function_call") {
      messages.push({
        role: "assistant",
        content: typeof it.arguments === "string" ? it.arguments : "",
      });
    } else if (typeof type !== "string") return invalidType(`${where}.type`, "a string");
  }
  return messages;
}

export const openaiResponsesWire: Wire = {
  path: "openai",
  endpoint: "responses",
  requestIdHeader: "x-request-id",
  idPrefix: "resp_",

  parse(body) {
    const invalid = checkBody(body, "Missing required parameter: 'model'.");
    if (invalid) return invalid.param === "model" ? missing("model") : invalid;
    const b = body as CheckedBody;
    if (typeof b.previous_response_id === "string") {
      // The simulator stores no responses, so it can never find one.
      return {
        error: `Previous response with id '${b.previous_response_id}' not found.`,
        param: "previous_response_id",
        code: "previous_response_not_found",
      };
    }
    const messages = readInput(b.input);
    if (isBadRequest(messages)) return messages;
    const instructions = b.instructions;
    if (
      !(instructions === undefined || instructions === null || typeof instructions === "string")
    ) {
      return invalidType("instructions", "a string");
    }
    const max = b.max_output_tokens;
    if (max !== undefined && max !== null) {
      if (typeof max !== "number" || !Number.isInteger(max)) {
        return invalidType("max_output_tokens", "an integer");
      }
      if (max < MIN_OUTPUT_TOKENS) {
        return {
          error: `Invalid 'max_output_tokens': integer below minimum value. Expected a value >= ${MIN_OUTPUT_TOKENS}, but got ${max} instead.`,
          param: "max_output_tokens",
          code: "integer_below_min_value",
        };
      }
    }
    if (b.stream !== undefined && b.stream !== null && typeof b.stream !== "boolean") {
      return invalidType("stream", "a boolean");
    }
    const request: ChatRequest = {
      model: b.model,
      messages,
      // Instructions frame the prompt as a system message does on the chat endpoint.
      system: typeof instructions === "string" ? instructions : undefined,
      stream: b.stream === true,
      includeUsage: true,
      maxTokens: typeof max === "number" ? max : undefined,
    };
    return request;
  },

  completion(answer) {
    return JSON.stringify(responseObject(answer, answer.text, true, Math.floor(Date.now() / 1000)));
  },

  stream(answer): StreamFormat {
    const created = Math.floor(Date.now() / 1000);
    const itemId = messageId(answer);
    let sequence = 0;
    let text = "";
    const event = (type: string, fields: Record<string, unknown>) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`;
    const at = { item_id: itemId, output_index: 0, content_index: 0 };
    const inProgress = () => responseObject(answer, text, false, created);
    return {
      head: () =>
        event("response.created", { response: inProgress() }) +
        event("response.in_progress", { response: inProgress() }) +
        event("response.output_item.added", {
          output_index: 0,
          item: {
            id: itemId,
            type: "message",
            status: "in_progress",
            role: "assistant",
            content: [],
          },
        }) +
        event("response.content_part.added", {
          ...at,
          part: { type: "output_text", text: "", annotations: [], logprobs: [] },
        }),
      piece: (delta) => {
        text += delta;
        return event("response.output_text.delta", { ...at, delta, logprobs: [] });
      },
      tail: () => {
        const done = responseObject(answer, text, true, created);
        return (
          event("response.output_text.done", { ...at, text, logprobs: [] }) +
          event("response.content_part.done", { ...at, part: outputText(text) }) +
          event("response.output_item.done", { output_index: 0, item: done.output[0] }) +
          event(answer.capped ? "response.incomplete" : "response.completed", { response: done })
        );
      },
      garbage: () =>
        `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":${sequence},\n\n`,
    };
  },

  error: openaiError,
  rateLimitHeaders: openaiRateLimitHeaders,
};

function messageId(answer: Answer): string {
  return `msg_${answer.id.slice("resp_".length)}`;
}

function outputText(text: string) {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

// The response object; `finished: false` is its state while streaming (no output, no usage).
function responseObject(answer: Answer, text: string, finished: boolean, created: number) {
  const status = !finished ? "in_progress" : answer.capped ? "incomplete" : "completed";
  const output = finished
    ? [
        {
          id: messageId(answer),
          type: "message",
          status: answer.capped ? "incomplete" : "completed",
          role: "assistant",
          content: [outputText(text)],
        },
      ]
    : [];
  const usage = finished
    ? {
        input_tokens: answer.promptTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: answer.outputTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: answer.promptTokens + answer.outputTokens,
      }
    : null;
  const system = answer.request.system;
  return {
    id: answer.id,
    object: "response",
    created_at: created,
    status,
    background: false,
    error: null,
    incomplete_details: finished && answer.capped ? { reason: "max_output_tokens" } : null,
    instructions: typeof system === "string" ? system : null,
    max_output_tokens: answer.request.maxTokens ?? null,
    max_tool_calls: null,
    model: answer.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    service_tier: "default",
    store: false,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage,
    user: null,
    metadata: {},
  };
}
