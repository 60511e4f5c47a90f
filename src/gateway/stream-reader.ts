// Reads a streamed answer event by event while the gateway passes it on: which events the client
// gets, when the stream has really ended (OpenAI's `[DONE]`, the Responses API's terminal event,
// Anthropic's `message_stop`), the usage to reconcile (OpenAI's final `include_usage` chunk,
// Anthropic's `message_start` + `message_delta` usage), and the answer assembled as the
// non-streamed body would have been, for the audit log.
import { InvalidResponseError } from "../errors.ts";
import { usageFromAnthropic } from "../providers/anthropic-provider.ts";
import { usageFromOpenAI } from "../providers/openai-provider.ts";
import type { TokenUsage } from "../providers/provider.ts";
import type { SseEvent } from "./sse-splitter.ts";

export interface StreamReader {
  /**
   * Reads one event and says whether the client gets it. Throws an InvalidResponseError for an
   * event that is not what the wire sends (a malformed stream).
   */
  read(event: SseEvent): boolean;
  /** The stream's terminal event has been read. */
  readonly done: boolean;
  /** The body of an error event the upstream sent inside the stream, if any. */
  readonly error: unknown;
  /** The answer as one body (the non-streamed shape), and its usage. */
  result(): { body: unknown; usage: TokenUsage | undefined };
}

type Json = Record<string, unknown>;

function parseData(event: SseEvent, provider: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(event.data);
  } catch {
    throw new InvalidResponseError(
      `${provider}: a streamed event was not valid JSON: ${event.data.slice(0, 80)}`,
      { provider, status: 200 },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidResponseError(`${provider}: a streamed event was not a JSON object`, {
      provider,
      status: 200,
    });
  }
  return value as Json;
}

type ToolCall = { id?: unknown; type?: unknown; function: { name: string; arguments: string } };
type Choice = {
  index: number;
  role: string;
  content: string | null;
  refusal: string | null;
  toolCalls: ToolCall[];
  finishReason: unknown;
};

/**
 * OpenAI chat completions. With `include_usage` the last chunk before `[DONE]` has `choices: []`
 * and the usage; the gateway always asks for it and drops that chunk when the client did not.
 */
export class ChatStreamReader implements StreamReader {
  done = false;
  error: unknown;
  readonly #clientWantsUsage: boolean;
  readonly #choices = new Map<number, Choice>();
  #head: Json | undefined;
  #usage: Json | undefined;

  constructor(options: { clientWantsUsage: boolean }) {
    this.#clientWantsUsage = options.clientWantsUsage;
  }

  read(event: SseEvent): boolean {
    if (event.data === "[DONE]") {
      this.done = true;
      return true;
    }
    if (event.data === "") return true;
    const chunk = parseData(event, "openai");
    if (chunk.error !== undefined) {
      this.error = { error: chunk.error };
      return true;
    }
    this.#head ??= chunk;
    const choices = Array.isArray(chunk.choices) ? (chunk.choices as Json[]) : [];
    for (const choice of choices) this.#add(choice);
    if (typeof chunk.usage === "object" && chunk.usage !== null) {
      this.#usage = chunk.usage as Json;
      if (choices.length === 0 && !this.#clientWantsUsage) return false;
    }
    return true;
  }

  #add(part: Json): void {
    const index = typeof part.index === "number" ? part.index : 0;
    let choice = this.#choices.get(index);
    if (choice === undefined) {
      choice = {
        index,
        role: "assistant",
        content: null,
        refusal: null,
        toolCalls: [],
        finishReason: null,
      };
      this.#choices.set(index, choice);
    }
    const delta = (part.delta ?? {}) as Json;
    if (typeof delta.role === "string") choice.role = delta.role;
    if (typeof delta.content === "string") choice.content = (choice.content ?? "") + delta.content;
    if (typeof delta.refusal === "string") choice.refusal = (choice.refusal ?? "") + delta.refusal;
    if (Array.isArray(delta.tool_calls)) {
      for (const call of delta.tool_calls as Json[]) {
        const at = typeof call.index === "number" ? call.index : choice.toolCalls.length;
        const fn = (call.function ?? {}) as Json;
        let known = choice.toolCalls[at];
        if (known === undefined) {
          known = { function: { name: "", arguments: "" } };
          choice.toolCalls[at] = known;
        }
        if (call.id !== undefined) known.id = call.id;
        if (call.type !== undefined) known.type = call.type;
        if (typeof fn.name === "string") known.function.name += fn.name;
        if (typeof fn.arguments === "string") known.function.arguments += fn.arguments;
      }
    }
    if (part.finish_reason !== null && part.finish_reason !== undefined)
      choice.finishReason = part.finish_reason;
  }

  result(): { body: unknown; usage: TokenUsage | undefined } {
    const head = this.#head ?? {};
    const choices = [...this.#choices.values()]
      .sort((a, b) => a.index - b.index)
      .map((c) => ({
        index: c.index,
        message: {
          role: c.role,
          content: c.content,
          refusal: c.refusal,
          ...(c.toolCalls.length > 0 ? { tool_calls: c.toolCalls.filter(Boolean) } : {}),
        },
        finish_reason: c.finishReason,
      }));
    const body = {
      id: head.id,
      object: "chat.completion",
      created: head.created,
      model: head.model,
      choices,
      ...(this.#usage ? { usage: this.#usage } : {}),
      ...(head.system_fingerprint !== undefined
        ? { system_fingerprint: head.system_fingerprint }
        : {}),
    };
    return { body, usage: usageFromOpenAI(body) };
  }
}

const RESPONSE_TERMINAL = new Set(["response.completed", "response.failed", "response.incomplete"]);

/** OpenAI's Responses API: the terminal event carries the whole response, usage included. */
export class ResponsesStreamReader implements StreamReader {
  done = false;
  error: unknown;
  #response: Json | undefined;

  read(event: SseEvent): boolean {
    if (event.data === "[DONE]") {
      this.done = true;
      return true;
    }
    if (event.data === "") return true;
    const data = parseData(event, "openai");
    const type = typeof data.type === "string" ? data.type : event.event;
    if (type === "error") {
      this.error = { error: data.error ?? data };
      return true;
    }
    if (typeof data.response === "object" && data.response !== null)
      this.#response = data.response as Json;
    if (type !== undefined && RESPONSE_TERMINAL.has(type)) this.done = true;
    return true;
  }

  result(): { body: unknown; usage: TokenUsage | undefined } {
    const body = this.#response ?? {};
    return { body, usage: usageFromOpenAI(body) };
  }
}

type Block = Json & { type?: unknown };

/**
 * Anthropic's Messages API: `message_start` holds the message and its input usage,
 * `content_block_*` build the content, `message_delta` carries the stop reason and the output
 * usage so far (cumulative), `message_stop` ends it.
 */
export class MessagesStreamReader implements StreamReader {
  done = false;
  error: unknown;
  #message: Json | undefined;
  #usage: Json = {};
  readonly #blocks = new Map<number, Block>();
  readonly #json = new Map<number, string>();
  #delta: Json = {};

  read(event: SseEvent): boolean {
    if (event.data === "") return true;
    const data = parseData(event, "anthropic");
    const type = typeof data.type === "string" ? data.type : event.event;
    switch (type) {
      case "message_start": {
        const message = (data.message ?? {}) as Json;
        this.#message = message;
        if (typeof message.usage === "object" && message.usage !== null)
          this.#usage = { ...(message.usage as Json) };
        break;
      }
      case "content_block_start":
        if (typeof data.index === "number")
          this.#blocks.set(data.index, { ...((data.content_block ?? {}) as Block) });
        break;
      case "content_block_delta":
        if (typeof data.index === "number")
          this.#applyDelta(data.index, (data.delta ?? {}) as Json);
        break;
      case "message_delta":
        if (typeof data.delta === "object" && data.delta !== null)
          this.#delta = { ...this.#delta, ...(data.delta as Json) };
        if (typeof data.usage === "object" && data.usage !== null) {
          for (const [key, value] of Object.entries(data.usage as Json))
            if (value !== null && value !== undefined) this.#usage[key] = value;
        }
        break;
      case "message_stop":
        this.done = true;
        break;
      case "error":
        this.error = data;
        break;
    }
    return true;
  }

  #applyDelta(index: number, delta: Json): void {
    const block = this.#blocks.get(index) ?? {};
    this.#blocks.set(index, block);
    switch (delta.type) {
      case "text_delta":
        block.text = String(block.text ?? "") + String(delta.text ?? "");
        break;
      case "input_json_delta":
        this.#json.set(index, (this.#json.get(index) ?? "") + String(delta.partial_json ?? ""));
        break;
      case "thinking_delta":
        block.thinking = String(block.thinking ?? "") + String(delta.thinking ?? "");
        break;
      case "signature_delta":
        block.signature = String(delta.signature ?? "");
        break;
      case "citations_delta":
        block.citations = [...((block.citations as unknown[]) ?? []), delta.citation];
        break;
    }
  }

  result(): { body: unknown; usage: TokenUsage | undefined } {
    const content = [...this.#blocks.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([index, block]) => {
        const json = this.#json.get(index);
        if (json === undefined) return block;
        try {
          return { ...block, input: json === "" ? {} : JSON.parse(json) };
        } catch {
          return { ...block, input: json };
        }
      });
    const body = { ...(this.#message ?? {}), content, ...this.#delta, usage: this.#usage };
    return { body, usage: usageFromAnthropic(body) };
  }
}
