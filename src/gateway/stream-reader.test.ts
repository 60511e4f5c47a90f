import { describe, expect, it } from "vitest";
import { InvalidResponseError } from "../errors.ts";
import { anthropicWire } from "../sim/anthropic-wire.ts";
import { openaiResponsesWire } from "../sim/openai-responses-wire.ts";
import { openaiWire } from "../sim/openai-wire.ts";
import type { Answer } from "../sim/wire.ts";
import { SseSplitter } from "./sse-splitter.ts";
import {
  ChatStreamReader,
  MessagesStreamReader,
  ResponsesStreamReader,
  type StreamReader,
} from "./stream-reader.ts";

const answer: Answer = {
  id: "chatcmpl-1",
  model: "sim-gpt",
  text: "",
  promptTokens: 12,
  outputTokens: 3,
  capped: false,
  includeUsage: true,
  request: {
    model: "sim-gpt",
    messages: [{ role: "user", content: "hello" }],
    system: undefined,
    stream: true,
    includeUsage: true,
    maxTokens: 3,
  },
};

/** Feeds a whole stream; returns the events the client gets. */
function feed(reader: StreamReader, text: string): string[] {
  const splitter = new SseSplitter();
  const events = [...splitter.push(new TextEncoder().encode(text)), ...splitter.end()];
  return events.filter((e) => reader.read(e)).map((e) => e.data);
}

describe("ChatStreamReader", () => {
  const format = openaiWire.stream(answer);
  const text =
    format.head() + format.piece("Hel") + format.piece("lo ") + format.piece("you") + format.tail();

  it("assembles the answer and reads the usage of the final chunk", () => {
    const reader = new ChatStreamReader({ clientWantsUsage: true });
    const passed = feed(reader, text);
    expect(reader.done).toBe(true);
    expect(passed.at(-1)).toBe("[DONE]");
    const { body, usage } = reader.result();
    expect(usage).toEqual({ inputTokens: 12, outputTokens: 3, cachedInputTokens: undefined });
    expect(body).toMatchObject({
      object: "chat.completion",
      model: "sim-gpt",
      choices: [
        { index: 0, message: { role: "assistant", content: "Hello you" }, finish_reason: "stop" },
      ],
    });
  });

  it("drops the usage-only chunk when the client did not ask for usage, and still reads it", () => {
    const reader = new ChatStreamReader({ clientWantsUsage: false });
    const passed = feed(reader, text);
    expect(passed.some((d) => d.includes('"choices":[]'))).toBe(false);
    expect(reader.result().usage?.outputTokens).toBe(3);
  });

  it("assembles tool calls from their pieces", () => {
    const reader = new ChatStreamReader({ clientWantsUsage: false });
    const chunk = (delta: object) =>
      `data: ${JSON.stringify({ id: "x", model: "m", choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`;
    feed(
      reader,
      chunk({
        role: "assistant",
        tool_calls: [
          { index: 0, id: "call_1", type: "function", function: { name: "look", arguments: "" } },
        ],
      }) +
        chunk({ tool_calls: [{ index: 0, function: { arguments: '{"q":' } }] }) +
        chunk({ tool_calls: [{ index: 0, function: { arguments: '"x"}' } }] }) +
        "data: [DONE]\n\n",
    );
    const body = reader.result().body as { choices: Array<{ message: { tool_calls: unknown } }> };
    expect(body.choices[0]!.message.tool_calls).toEqual([
      { id: "call_1", type: "function", function: { name: "look", arguments: '{"q":"x"}' } },
    ]);
  });

  it("a stream cut before [DONE] is not done; garbage is a malformed answer", () => {
    const cut = new ChatStreamReader({ clientWantsUsage: false });
    feed(cut, format.head() + format.piece("Hel"));
    expect(cut.done).toBe(false);
    expect(() => feed(new ChatStreamReader({ clientWantsUsage: false }), format.garbage())).toThrow(
      InvalidResponseError,
    );
  });

  it("keeps an error event the upstream sent inside the stream", () => {
    const reader = new ChatStreamReader({ clientWantsUsage: false });
    feed(reader, 'data: {"error":{"message":"boom","type":"server_error"}}\n\n');
    expect(reader.error).toEqual({ error: { message: "boom", type: "server_error" } });
  });
});

describe("MessagesStreamReader", () => {
  it("assembles the message and sums the usage of message_start and message_delta", () => {
    const format = anthropicWire.stream({ ...answer, id: "msg_1", model: "sim-claude" });
    const reader = new MessagesStreamReader();
    feed(reader, format.head() + format.piece("Hi ") + format.piece("there") + format.tail());
    expect(reader.done).toBe(true);
    const { body, usage } = reader.result();
    expect(usage).toEqual({ inputTokens: 12, outputTokens: 3, cachedInputTokens: undefined });
    expect(body).toMatchObject({
      id: "msg_1",
      type: "message",
      role: "assistant",
      content: [{ type: "text", text: "Hi there" }],
      stop_reason: "end_turn",
    });
  });

  it("parses a tool_use block's input from its JSON pieces", () => {
    const event = (type: string, data: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const reader = new MessagesStreamReader();
    feed(
      reader,
      event("message_start", {
        message: { id: "m", content: [], usage: { input_tokens: 5, output_tokens: 1 } },
      }) +
        event("content_block_start", {
          index: 0,
          content_block: { type: "tool_use", id: "t", name: "look", input: {} },
        }) +
        event("content_block_delta", {
          index: 0,
          delta: { type: "input_json_delta", partial_json: '{"q":' },
        }) +
        event("content_block_delta", {
          index: 0,
          delta: { type: "input_json_delta", partial_json: "1}" },
        }) +
        event("message_delta", {
          delta: { stop_reason: "tool_use" },
          usage: { output_tokens: 9 },
        }) +
        event("message_stop", {}),
    );
    const { body, usage } = reader.result();
    expect((body as { content: unknown[] }).content).toEqual([
      { type: "tool_use", id: "t", name: "look", input: { q: 1 } },
    ]);
    expect(usage?.outputTokens).toBe(9);
  });
});

describe("ResponsesStreamReader", () => {
  it("reads the simulator's Responses stream: done at response.completed, with its usage", () => {
    const format = openaiResponsesWire.stream({ ...answer, id: "resp_1", text: "Hi you" });
    const reader = new ResponsesStreamReader();
    feed(reader, format.head() + format.piece("Hi ") + format.piece("you") + format.tail());
    expect(reader.done).toBe(true);
    const { body, usage } = reader.result();
    expect(usage).toMatchObject({ inputTokens: 12, outputTokens: 3 });
    expect(body).toMatchObject({ object: "response", status: "completed" });
  });

  it("takes the response of the terminal event, usage included", () => {
    const reader = new ResponsesStreamReader();
    const response = {
      id: "resp_1",
      object: "response",
      status: "completed",
      output: [],
      usage: { input_tokens: 7, output_tokens: 4 },
    };
    feed(
      reader,
      `event: response.created\ndata: ${JSON.stringify({ type: "response.created", response: { ...response, status: "in_progress", usage: null } })}\n\n` +
        `event: response.output_text.delta\ndata: ${JSON.stringify({ type: "response.output_text.delta", delta: "hi" })}\n\n` +
        `event: response.completed\ndata: ${JSON.stringify({ type: "response.completed", response })}\n\n`,
    );
    expect(reader.done).toBe(true);
    expect(reader.result()).toEqual({
      body: response,
      usage: { inputTokens: 7, outputTokens: 4, cachedInputTokens: undefined },
    });
  });
});
