// One conformance suite, run against every provider adapter over HTTP against the simulator:
// answers reach the request that asked, usage and rate-limit headers are normalised, and every
// kind of failure surfaces as the same typed Salvo error whatever the adapter.
import { afterEach, describe, expect, it } from "vitest";
import {
  ClientError,
  InvalidResponseError,
  NetworkError,
  OverloadedError,
  type ProviderError,
  QuotaExceededError,
  RateLimitError,
  ServerError,
} from "../src/errors.ts";
import { AnthropicProvider } from "../src/providers/anthropic-provider.ts";
import { errorFromResponse } from "../src/providers/classify.ts";
import { CustomProvider } from "../src/providers/custom-provider.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { Provider, ProviderRequest } from "../src/providers/provider.ts";
import { parseRateLimitHeaders } from "../src/providers/rate-limit-headers.ts";
import {
  countPromptTokens,
  expectedMarker,
  type SimConfigInput,
  type SimHandle,
  startSimulator,
} from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

const FAKE_KEY = "sk-test-conformance-not-a-real-key";

type Adapter = {
  name: string;
  make(sim: SimHandle): Provider;
  request(text: string, maxTokens?: number): ProviderRequest;
  /** The answer's text, from the provider's own body shape. */
  text(body: unknown): string;
};

const openAiRequest = (text: string, maxTokens = 32): ProviderRequest => ({
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    max_tokens: maxTokens,
    messages: [{ role: "user", content: text }],
  },
});
const openAiText = (body: unknown) =>
  (body as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? "";

// A custom provider: plain fetch to the simulator, errors classified by the shared classifier.
function fetchProvider(sim: SimHandle): Provider {
  return new CustomProvider(async (request, { signal }) => {
    let response: Response;
    try {
      response = await fetch(`${sim.baseUrl}${request.path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${FAKE_KEY}` },
        body: JSON.stringify(request.body),
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new NetworkError(
        `custom: ${(error as Error).message}`,
        { provider: "custom" },
        { cause: error },
      );
    }
    const text = await response.text().catch((error: unknown) => {
      throw new NetworkError(`custom: ${(error as Error).message}`, { provider: "custom" });
    });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      if (!response.ok) body = undefined;
      else
        throw new InvalidResponseError(
          "custom: not JSON",
          { provider: "custom", status: 200 },
          { cause: error },
        );
    }
    if (!response.ok) {
      throw errorFromResponse({
        status: response.status,
        headers: response.headers,
        body,
        provider: "custom",
      });
    }
    const usage = (body as { usage?: { prompt_tokens: number; completion_tokens: number } }).usage;
    if (!usage)
      throw new InvalidResponseError("custom: no usage", { provider: "custom", status: 200 });
    return {
      body,
      usage: { inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens },
    };
  });
}

const adapters: Adapter[] = [
  {
    name: "openai",
    make: (sim) => new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: FAKE_KEY }),
    request: openAiRequest,
    text: openAiText,
  },
  {
    name: "anthropic",
    make: (sim) => new AnthropicProvider({ baseURL: sim.origin, apiKey: FAKE_KEY }),
    request: (text, maxTokens = 32) => ({
      path: "/messages",
      body: {
        model: "claude-sonnet-4-5",
        max_tokens: maxTokens,
        messages: [{ role: "user", content: text }],
      },
    }),
    text: (body) => (body as { content: Array<{ text: string }> }).content[0]?.text ?? "",
  },
  { name: "custom", make: fetchProvider, request: openAiRequest, text: openAiText },
];

let sim: SimHandle | undefined;
async function simulator(config: SimConfigInput): Promise<SimHandle> {
  sim = await startSimulator({ latency: { ttftMs: 5, msPerToken: 0 }, ...config });
  return sim;
}
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

describe.each(adapters)("provider conformance: $name", (adapter) => {
  it("answers the request that asked, with normalised usage and rate-limit headers", async () => {
    const s = await simulator({ limits: { rpm: 6000, tpm: 1_000_000 }, output: { tokens: 8 } });
    const provider = adapter.make(s);
    const texts = ["claim 1: brake pads", "claim 2: windscreen", "claim 3: tyres"];
    const results = await Promise.all(
      texts.map((text) =>
        provider.call(adapter.request(text), { signal: new AbortController().signal }),
      ),
    );
    results.forEach((result, i) => {
      const messages = [{ role: "user", content: texts[i] ?? "" }];
      expect(result.status).toBe(200);
      expect(adapter.text(result.body).startsWith(expectedMarker(messages))).toBe(true);
      expect(result.usage?.inputTokens).toBe(countPromptTokens(messages));
      expect(result.usage?.outputTokens).toBe(8);
    });
    if (adapter.name !== "custom") {
      expect(results[0]?.rateLimits?.requests?.limit).toBe(6000);
      expect(results[0]?.rateLimits?.requests?.remaining).toBeTypeOf("number");
      expect(results[0]?.requestId).toBeTypeOf("string");
    }
    expect(s.stats().completions).toBe(3);
  });

  it("estimates the prompt as the simulator counts it, and reserves max_tokens", () => {
    const provider = adapter.make({
      baseUrl: "http://127.0.0.1:9/v1",
      origin: "http://127.0.0.1:9",
    } as SimHandle);
    const request = adapter.request("How many line items does claim 77 have?", 100);
    const estimate = provider.estimate(request);
    expect(estimate.inputTokens).toBe(
      countPromptTokens([{ role: "user", content: "How many line items does claim 77 have?" }]),
    );
    expect(estimate.outputTokens).toBe(100);
  });

  it("a 429 is a RateLimitError with the retry hint and the rate-limit headers", async () => {
    const s = await simulator({ limits: { rpm: 60 } }); // a bucket of one request
    const provider = adapter.make(s);
    const signal = new AbortController().signal;
    await provider.call(adapter.request("first"), { signal });
    const error = await rejection<ProviderError>(
      provider.call(adapter.request("second"), { signal }),
    );
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error.status).toBe(429);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    if (adapter.name !== "custom") expect(error.provider).toBe(adapter.name);
    expect(error.rateLimits?.requests?.remaining).toBe(0);
  });

  it("a quota error is never retryable", async () => {
    const s = await simulator({ quota: true });
    const error = await rejection<ProviderError>(
      adapter.make(s).call(adapter.request("x"), { signal: new AbortController().signal }),
    );
    if (adapter.name === "anthropic") {
      expect(error).toBeInstanceOf(ClientError);
      expect(error.status).toBe(400);
    } else {
      expect(error).toBeInstanceOf(QuotaExceededError);
      expect(error.providerCode).toBe("insufficient_quota");
    }
  });

  it.each([
    ["p500", ServerError],
    ["p503", OverloadedError],
    ["pReset", NetworkError],
    ["pMalformed", InvalidResponseError],
  ] as const)("fault %s surfaces as %o", async (fault, ErrorClass) => {
    const s = await simulator({ faults: { [fault]: 1 } });
    const error = await rejection<ProviderError>(
      adapter.make(s).call(adapter.request("x"), { signal: new AbortController().signal }),
    );
    expect(error).toBeInstanceOf(ErrorClass);
  });

  it("an aborted attempt rejects with the signal's reason, and the request really ends", async () => {
    const s = await simulator({ faults: { pHang: 1 } });
    const controller = new AbortController();
    const reason = new Error("attempt timed out");
    const call = adapter.make(s).call(adapter.request("x"), { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 50);
    await expect(call).rejects.toBe(reason);
    await expect.poll(() => s.stats().ended, { timeout: 2000 }).toBe(1);
    expect(s.stats().inService).toBe(0);
  });
});

it("parses the simulator's headers the way the adapters do", async () => {
  const s = await simulator({ limits: { rpm: 600, tpm: 60_000 } });
  const response = await fetch(`${s.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(openAiRequest("hello").body),
  });
  await response.text();
  const snapshot = parseRateLimitHeaders(response.headers);
  expect(snapshot?.requests?.limit).toBe(600);
  expect(snapshot?.tokens?.limit).toBe(60_000);
  expect(snapshot?.tokens?.resetMs).toBeGreaterThan(0);
});
