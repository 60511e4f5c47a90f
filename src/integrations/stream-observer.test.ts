import { describe, expect, it } from "vitest";
import { StreamObserver } from "./stream-observer.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Feeds `text` in pieces of `size` bytes, so events are cut at every place. */
function observe(kind: "openai" | "anthropic", text: string, size = 7): StreamObserver {
  const observer = new StreamObserver(kind);
  const all = bytes(text);
  for (let i = 0; i < all.length; i += size) observer.push(all.subarray(i, i + size));
  observer.end();
  return observer;
}

describe("StreamObserver", () => {
  it("assembles an OpenAI chat stream, its usage and its end", () => {
    const chunk = (delta: object, finish: string | null = null, usage?: object) =>
      `data: ${JSON.stringify({ id: "c1", model: "m", choices: usage ? [] : [{ index: 0, delta, finish_reason: finish }], ...(usage ? { usage } : {}) })}\n\n`;
    const text = `${chunk({ role: "assistant", content: "" })}${chunk({ content: "Héllo" })}${chunk({ content: " wörld" })}${chunk({}, "stop")}${chunk({}, null, { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 })}data: [DONE]\n\n`;
    for (const size of [1, 3, 7, 1000]) {
      const observer = observe("openai", text, size);
      expect(observer.complete).toBe(true);
      expect(observer.body()).toMatchObject({
        id: "c1",
        model: "m",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "Héllo wörld" },
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 5, completion_tokens: 2 },
      });
    }
    // Cut before its last event: not complete.
    expect(observe("openai", text.slice(0, text.indexOf("wörld"))).complete).toBe(false);
  });

  it("takes the Responses API's final response object, and its failure", () => {
    const ev = (type: string, data: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const response = {
      id: "resp_1",
      object: "response",
      usage: { input_tokens: 4, output_tokens: 3 },
    };
    const done = observe(
      "openai",
      ev("response.created", { response: { id: "resp_1" } }) +
        ev("response.output_text.delta", { delta: "hi" }) +
        ev("response.completed", { response }),
    );
    expect(done.complete).toBe(true);
    expect(done.body()).toEqual(response);
    const failed = observe(
      "openai",
      ev("response.failed", { response: { error: { code: "server_error" } } }),
    );
    expect(failed.complete).toBe(false);
    expect(failed.error).toEqual({ code: "server_error" });
  });

  it("assembles an Anthropic message with its input and output usage", () => {
    const ev = (type: string, data: object) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const text =
      ev("message_start", {
        message: { id: "msg_1", model: "c", usage: { input_tokens: 12, output_tokens: 1 } },
      }) +
      ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hi" } }) +
      ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: " there" } }) +
      ev("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 9 } }) +
      ev("message_stop", {});
    const observer = observe("anthropic", text, 5);
    expect(observer.complete).toBe(true);
    expect(observer.body()).toMatchObject({
      id: "msg_1",
      content: [{ type: "text", text: "Hi there" }],
      stop_reason: "end_turn",
      usage: { input_tokens: 12, output_tokens: 9 },
    });
    const broken = observe("anthropic", text.replace(/event: message_stop[\s\S]*$/, ""));
    expect(broken.complete).toBe(false);
    const errored = observe("anthropic", ev("error", { error: { type: "overloaded_error" } }));
    expect(errored.error).toEqual({ type: "overloaded_error" });
  });
});
