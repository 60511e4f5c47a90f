import { describe, expect, it } from "vitest";
import { countTokens, estimatePromptTokens } from "../providers/token-estimate.ts";
import { apiKind, chargedFor, estimateRequest } from "./request-shape.ts";

describe("request shapes", () => {
  it("tells Anthropic from OpenAI-compatible requests by header or path", () => {
    expect(apiKind("/v1/messages", new Headers())).toBe("anthropic");
    expect(apiKind("/proxy/x", new Headers({ "anthropic-version": "2023-06-01" }))).toBe(
      "anthropic",
    );
    expect(apiKind("/v1/chat/completions", new Headers())).toBe("openai");
    expect(apiKind("/v1/responses", new Headers())).toBe("openai");
  });

  it("estimates every endpoint from its own fields", () => {
    const messages = [{ role: "user", content: "Is a windscreen covered?" }];
    expect(
      estimateRequest("openai", "/v1/chat/completions", { messages, max_tokens: 50, n: 2 }),
    ).toEqual({
      inputTokens: estimatePromptTokens({ messages }),
      outputTokens: 100,
    });
    // The Responses API: input and instructions count like messages and a system prompt.
    expect(
      estimateRequest("openai", "/v1/responses", {
        input: "Is a windscreen covered?",
        instructions: "Be brief.",
        max_output_tokens: 64,
      }),
    ).toEqual({
      inputTokens: estimatePromptTokens({ messages, system: "Be brief." }),
      outputTokens: 64,
    });
    expect(estimateRequest("openai", "/v1/responses", { input: "x" }, 1000).outputTokens).toBe(
      1000,
    );
    expect(estimateRequest("openai", "/v1/embeddings", { input: ["a b c", "d"] })).toEqual({
      inputTokens: countTokens("a b c") + countTokens("d"),
      outputTokens: 0,
    });
    expect(estimateRequest("openai", "/v1/embeddings", { input: [1, 2, 3] }).inputTokens).toBe(3);
    expect(estimateRequest("openai", "/v1/embeddings", { input: [[1, 2], [3]] }).inputTokens).toBe(
      3,
    );
    expect(estimateRequest("openai", "/v1/moderations", { input: "hello" }).outputTokens).toBe(0);
    expect(estimateRequest("openai", "/v1/completions", { prompt: "hello there" })).toEqual({
      inputTokens: countTokens("hello there"),
      outputTokens: 16,
    });
    expect(estimateRequest("openai", "/v1/images/generations", { prompt: "a cat" })).toEqual({
      inputTokens: 0,
      outputTokens: 0,
    });
    expect(
      estimateRequest("anthropic", "/v1/messages", {
        messages,
        system: "Be brief.",
        max_tokens: 300,
      }),
    ).toEqual({
      inputTokens: estimatePromptTokens({ messages, system: "Be brief." }),
      outputTokens: 300,
    });
  });

  it("charges what each provider's limiter charges", () => {
    const reserved = { inputTokens: 20, outputTokens: 500 };
    const usage = { inputTokens: 18, outputTokens: 40, cachedInputTokens: 10 };
    expect(chargedFor("openai", reserved, usage)).toEqual({ inputTokens: 18, outputTokens: 500 });
    expect(chargedFor("anthropic", reserved, usage)).toEqual({ inputTokens: 8, outputTokens: 40 });
  });
});
