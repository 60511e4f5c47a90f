// Reads a streamed answer (server-sent events) as it passes to its caller, untouched, to learn
// what the non-streamed answer would have said: the usage to reconcile the reservation with, the
// answer assembled for the audit record, and whether the stream reached its final event.
//
// The three shapes: OpenAI chat completions (`data:` chunks, usage in the last chunk when
// `stream_options.include_usage` is set, then `[DONE]`), the Responses API (typed events ending
// in `response.completed`/`incomplete`/`failed`, whose `response` carries the usage) and
// Anthropic messages (`message_start` with the input usage, text deltas, `message_delta` with the
// output usage, `message_stop`).

import type { ApiKind } from "./request-shape.ts";

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One choice of a chat completion, assembled from its deltas. */
type ChoiceState = { index: number; content: string; finish: unknown; role: unknown };

export class StreamObserver {
  readonly #kind: ApiKind;
  readonly #decoder = new TextDecoder();
  #buffer = "";
  #event = "";
  #data: string[] = [];
  /** The stream reached the event that ends a complete answer. */
  complete = false;
  /** An `error` event or an error payload arrived in the stream. */
  error: unknown;
  // OpenAI chat completions
  #head: Json | undefined;
  #choices = new Map<number, ChoiceState>();
  #usage: Json | undefined;
  // Responses API: the final response object
  #response: Json | undefined;
  // Anthropic
  #message: Json | undefined;
  #text = "";
  #stop: Json | undefined;

  constructor(kind: ApiKind) {
    this.#kind = kind;
  }

  /** Feeds the next bytes of the stream. */
  push(bytes: Uint8Array): void {
    this.#buffer += this.#decoder.decode(bytes, { stream: true });
    this.#lines();
  }

  /** The stream ended: flushes a last event without its blank line. */
  end(): void {
    this.#buffer += this.#decoder.decode();
    if (this.#buffer !== "") this.#buffer += "\n";
    this.#lines();
    this.#dispatch();
    // Some OpenAI-compatible servers end a chat stream without `[DONE]`: every choice finished
    // is a complete answer too.
    if (this.#kind === "openai" && this.#response === undefined && this.#choices.size > 0) {
      this.complete ||= [...this.#choices.values()].every((c) => c.finish !== null);
    }
  }

  #lines(): void {
    let start = 0;
    for (;;) {
      const nl = this.#buffer.indexOf("\n", start);
      if (nl < 0) break;
      let line = this.#buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        this.#dispatch();
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.#event = value;
      else if (field === "data") this.#data.push(value);
    }
    this.#buffer = this.#buffer.slice(start);
  }

  #dispatch(): void {
    if (this.#data.length === 0) {
      this.#event = "";
      return;
    }
    const data = this.#data.join("\n");
    const event = this.#event;
    this.#data = [];
    this.#event = "";
    if (data === "[DONE]") {
      if (this.#kind === "openai") this.complete = true;
      return;
    }
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      return; // the caller's SDK reports a malformed event; the attempt ends incomplete
    }
    if (!isObject(payload)) return;
    if (event === "error" || payload.type === "error" || isObject(payload.error)) {
      this.error = payload.error ?? payload;
      return;
    }
    if (this.#kind === "anthropic") this.#anthropic(payload);
    else if (typeof payload.type === "string" && payload.type.startsWith("response.")) {
      this.#responses(payload);
    } else this.#chat(payload);
  }

  #chat(chunk: Json): void {
    this.#head ??= chunk;
    if (isObject(chunk.usage)) this.#usage = chunk.usage;
    if (!Array.isArray(chunk.choices)) return;
    for (const choice of chunk.choices as unknown[]) {
      if (!isObject(choice)) continue;
      const index = typeof choice.index === "number" ? choice.index : 0;
      let state = this.#choices.get(index);
      if (state === undefined) {
        state = { index, content: "", finish: null, role: "assistant" };
        this.#choices.set(index, state);
      }
      const delta = isObject(choice.delta) ? choice.delta : {};
      if (typeof delta.content === "string") state.content += delta.content;
      if (typeof delta.role === "string") state.role = delta.role;
      if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
        state.finish = choice.finish_reason;
      }
    }
  }

  #responses(event: Json): void {
    const type = event.type as string;
    if (isObject(event.response)) this.#response = event.response;
    if (type === "response.completed" || type === "response.incomplete") this.complete = true;
    else if (type === "response.failed") {
      this.error = isObject(event.response) ? (event.response.error ?? event.response) : event;
    }
  }

  #anthropic(event: Json): void {
    switch (event.type) {
      case "message_start":
        if (isObject(event.message)) this.#message = event.message;
        break;
      case "content_block_delta": {
        const delta = isObject(event.delta) ? event.delta : {};
        if (typeof delta.text === "string") this.#text += delta.text;
        break;
      }
      case "message_delta":
        this.#stop = event;
        break;
      case "message_stop":
        this.complete = true;
        break;
    }
  }

  /**
   * The answer as its non-streamed form would read, as far as it arrived: a chat completion, the
   * final response object, or an Anthropic message.
   */
  body(): Json {
    if (this.#kind === "anthropic") {
      const message: Json = { ...(this.#message ?? { type: "message", role: "assistant" }) };
      message.content = [{ type: "text", text: this.#text }];
      const delta = isObject(this.#stop?.delta) ? this.#stop.delta : {};
      if (delta.stop_reason !== undefined) message.stop_reason = delta.stop_reason;
      const usage = { ...(isObject(message.usage) ? message.usage : {}) };
      if (isObject(this.#stop?.usage)) Object.assign(usage, this.#stop.usage);
      message.usage = usage;
      return message;
    }
    if (this.#response !== undefined) return this.#response;
    const head = this.#head ?? {};
    const body: Json = {
      id: head.id,
      object: "chat.completion",
      created: head.created,
      model: head.model,
      choices: [...this.#choices.values()]
        .sort((a, b) => a.index - b.index)
        .map((c) => ({
          index: c.index,
          message: { role: c.role, content: c.content },
          finish_reason: c.finish,
        })),
    };
    if (this.#usage !== undefined) body.usage = this.#usage;
    return body;
  }
}
