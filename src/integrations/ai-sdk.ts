// Salvo as Vercel AI SDK middleware (`ai` 7, language model middleware specification `v4`):
//
//   const model = wrapLanguageModel({ model: openai("gpt-4o-mini"), middleware: salvoMiddleware(salvo) });
//   await generateText({ model, prompt });  // admitted, reconciled, retried by Salvo
//
// Every `doGenerate` and `doStream` of the wrapped model is one call through the scheduler:
// admitted with the tokens its prompt and `maxOutputTokens` will cost, retried by Salvo's policy
// (the provider's HTTP errors become Salvo's typed errors, which the AI SDK never retries, so
// there are no double retries whatever `maxRetries` says), reconciled with the result's usage and
// rate-limit headers, and traced. A streamed answer is handed over at once and holds its slot
// until it has been read to the end, cancelled or aborted. Only types come from the AI SDK: the
// middleware is a plain object and loads nothing of `ai`.

import type {
  LanguageModelV4,
  LanguageModelV4CallOptions,
  LanguageModelV4GenerateResult,
  LanguageModelV4StreamPart,
  LanguageModelV4StreamResult,
  LanguageModelV4Usage,
} from "@ai-sdk/provider";
import type { Attributes } from "@opentelemetry/api";
// The public type comes from `ai`, the declared (optional) peer: a consumer's types resolve with
// it alone; @ai-sdk/provider's are used inside only.
import type { LanguageModelMiddleware } from "ai";
import { Scheduler } from "../core/scheduler.ts";
import type { TaskContext } from "../core/task-context.ts";
import {
  InvalidResponseError,
  NetworkError,
  ProviderError,
  SalvoError,
  TimeoutError,
} from "../errors.ts";
import { errorFromResponse } from "../providers/classify.ts";
import type { CostEstimate } from "../providers/provider.ts";
import { parseRateLimitHeaders } from "../providers/rate-limit-headers.ts";
import { type ChatLike, estimatePromptTokens } from "../providers/token-estimate.ts";
import { costOf, Salvo } from "../salvo.ts";
import { holdStream } from "./held-stream.ts";
import { instrument, type ResponseDescription, withGenAiRequest } from "./otel/telemetry.ts";
import { DEFAULT_MAX_TOKENS } from "./request-shape.ts";

export type SalvoMiddlewareOptions = {
  /** Output tokens to reserve when a call sets no `maxOutputTokens`. @default 4096 */
  defaultMaxTokens?: number | undefined;
  /** Priority of the calls. Higher runs first. @default 0 */
  priority?: number | undefined;
  /** Per-attempt timeout, ms. @default the scheduler's */
  timeoutMs?: number | undefined;
};

/** What a call's attempt resolves with, for the scheduler's events and the traces. */
type CallSummary = {
  usage: LanguageModelV4Usage | undefined;
  responseId: string | undefined;
  responseModel: string | undefined;
  finishReason: string | undefined;
};

/** The provider's family as the GenAI conventions name it: `openai.chat` -> `openai`. */
function providerName(model: LanguageModelV4): string {
  return model.provider.split(".")[0] ?? model.provider;
}

/** OpenAI charges the reserved maximum output against TPM; the others charge the real output. */
function chargesMaximum(model: LanguageModelV4): boolean {
  return providerName(model) === "openai";
}

/** The prompt as chat messages, for the same token count as a direct request. */
function promptAsChat(params: LanguageModelV4CallOptions): ChatLike {
  const messages: Array<{ role?: string; content?: unknown }> = [];
  let system = "";
  for (const message of params.prompt) {
    if (message.role === "system") {
      system += message.content;
      continue;
    }
    const parts: Array<{ type: string; text: string }> = [];
    for (const part of message.content) {
      if ("text" in part && typeof part.text === "string")
        parts.push({ type: "text", text: part.text });
      else if (part.type === "tool-call") {
        parts.push({ type: "text", text: JSON.stringify(part.input ?? "") });
      } else if (part.type === "tool-result") {
        parts.push({ type: "text", text: JSON.stringify(part.output ?? "") });
      }
    }
    messages.push({ role: message.role, content: parts });
  }
  return {
    messages,
    system: system === "" ? undefined : system,
    tools: params.tools && params.tools.length > 0 ? params.tools : undefined,
  };
}

function estimate(params: LanguageModelV4CallOptions, defaultMaxTokens: number): CostEstimate {
  return {
    inputTokens: estimatePromptTokens(promptAsChat(params)),
    outputTokens: params.maxOutputTokens ?? defaultMaxTokens,
  };
}

function requestAttributes(model: LanguageModelV4, params: LanguageModelV4CallOptions): Attributes {
  const attributes: Attributes = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": providerName(model),
    "gen_ai.request.model": model.modelId,
  };
  if (params.maxOutputTokens !== undefined) {
    attributes["gen_ai.request.max_tokens"] = params.maxOutputTokens;
  }
  if (params.temperature !== undefined)
    attributes["gen_ai.request.temperature"] = params.temperature;
  if (params.topP !== undefined) attributes["gen_ai.request.top_p"] = params.topP;
  if (params.seed !== undefined) attributes["gen_ai.request.seed"] = params.seed;
  return attributes;
}

function describeSummary(value: unknown): ResponseDescription {
  const summary = value as CallSummary | undefined;
  const attributes: Attributes = {};
  if (summary?.responseModel !== undefined) {
    attributes["gen_ai.response.model"] = summary.responseModel;
  }
  if (summary?.responseId !== undefined) attributes["gen_ai.response.id"] = summary.responseId;
  if (summary?.finishReason !== undefined) {
    attributes["gen_ai.response.finish_reasons"] = [summary.finishReason];
  }
  const input = summary?.usage?.inputTokens.total;
  const output = summary?.usage?.outputTokens.total;
  if (input !== undefined) attributes["gen_ai.usage.input_tokens"] = input;
  if (output !== undefined) attributes["gen_ai.usage.output_tokens"] = output;
  return {
    attributes,
    usage:
      input !== undefined || output !== undefined
        ? { inputTokens: input ?? 0, outputTokens: output ?? 0 }
        : undefined,
  };
}

/** Reconciles the reservation with the real usage, and the buckets with the headers. */
function report(
  context: TaskContext,
  model: LanguageModelV4,
  reserved: CostEstimate,
  usage: LanguageModelV4Usage | undefined,
  headers: Record<string, string | undefined> | undefined,
): void {
  if (headers) {
    const clean: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers))
      if (value !== undefined) clean[name] = value;
    const snapshot = parseRateLimitHeaders(clean);
    if (snapshot) context.reportRateLimits(snapshot);
  }
  const input = usage?.inputTokens.total;
  const output = usage?.outputTokens.total;
  if (input === undefined && output === undefined) return;
  const inputTokens = input ?? reserved.inputTokens;
  const generated = output ?? 0;
  const outputTokens = chargesMaximum(model) ? reserved.outputTokens : generated;
  context.reportUsage({
    tokens: inputTokens + outputTokens,
    inputTokens,
    outputTokens,
    generatedTokens: generated,
  });
}

type AiError = Error & {
  statusCode?: unknown;
  responseHeaders?: Record<string, string>;
  responseBody?: unknown;
};

/**
 * Salvo's typed error for what a model call threw. The AI SDK's APICallError with a status is
 * classified like any provider answer; one without a status (the connection failed) is a
 * NetworkError; an answer the provider package could not parse is an InvalidResponseError. Other
 * errors (a bad prompt, a bug) are the caller's own and pass through unchanged (not retried).
 */
export function errorFromAiSdk(error: unknown, provider: string, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  if (error instanceof SalvoError || !(error instanceof Error)) return error;
  const e = error as AiError;
  switch (e.name) {
    case "AI_APICallError": {
      if (typeof e.statusCode === "number") {
        let body: unknown;
        try {
          body = typeof e.responseBody === "string" ? JSON.parse(e.responseBody) : undefined;
        } catch {
          body = undefined;
        }
        return errorFromResponse(
          { status: e.statusCode, headers: e.responseHeaders, body, message: e.message, provider },
          { cause: error },
        );
      }
      return new NetworkError(
        `${provider}: connection failed: ${e.message}`,
        { provider },
        { cause: error },
      );
    }
    case "AI_JSONParseError":
    case "AI_TypeValidationError":
    case "AI_InvalidResponseDataError":
    case "AI_EmptyResponseBodyError":
      return new InvalidResponseError(
        `${provider}: the answer could not be read: ${e.message}`,
        { provider, status: 200 },
        { cause: error },
      );
    default:
      return error;
  }
}

/** A stream failure after the stream was handed over: recorded, never retried. */
function streamFailure(provider: string, error: unknown): ProviderError {
  const cause = error;
  if (error instanceof ProviderError && error.failureClass === "timeout") {
    return new TimeoutError(
      `${provider}: the streamed answer was cut off: ${error.message}`,
      {
        provider,
        shouldRetry: false,
      },
      { cause },
    );
  }
  const text = error instanceof Error ? error.message : JSON.stringify(error)?.slice(0, 300);
  return new InvalidResponseError(
    `${provider}: the streamed answer failed: ${text}`,
    { provider, shouldRetry: false },
    { cause },
  );
}

/**
 * The AI SDK middleware that runs every call of the wrapped model through `salvo` (a Salvo
 * client, whose scheduler is used, or a Scheduler).
 */
export function salvoMiddleware(
  salvo: Salvo | Scheduler,
  options: SalvoMiddlewareOptions = {},
): LanguageModelMiddleware {
  const scheduler = salvo instanceof Salvo ? salvo.scheduler : salvo;
  if (!(scheduler instanceof Scheduler)) {
    throw new TypeError("salvoMiddleware: expected a Salvo client or a Scheduler");
  }
  instrument(scheduler);
  const defaultMaxTokens = options.defaultMaxTokens ?? DEFAULT_MAX_TOKENS;
  const runOptions = (params: LanguageModelV4CallOptions, reserved: CostEstimate) => ({
    cost: costOf(reserved),
    signal: params.abortSignal,
    priority: options.priority,
    timeoutMs: options.timeoutMs,
  });
  const attemptSignal = (params: LanguageModelV4CallOptions, context: TaskContext) =>
    params.abortSignal ? AbortSignal.any([params.abortSignal, context.signal]) : context.signal;

  return {
    specificationVersion: "v4",

    wrapGenerate({ params, model }): Promise<LanguageModelV4GenerateResult> {
      const reserved = estimate(params, defaultMaxTokens);
      const provider = providerName(model);
      let result: LanguageModelV4GenerateResult | undefined;
      return withGenAiRequest(
        { attributes: requestAttributes(model, params), describe: describeSummary },
        () =>
          scheduler.run(
            async (context): Promise<CallSummary> => {
              try {
                result = await model.doGenerate({
                  ...params,
                  abortSignal: attemptSignal(params, context),
                });
              } catch (error) {
                throw errorFromAiSdk(error, provider, context.signal);
              }
              report(context, model, reserved, result.usage, result.response?.headers);
              return {
                usage: result.usage,
                responseId: result.response?.id,
                responseModel: result.response?.modelId,
                finishReason: result.finishReason.raw ?? result.finishReason.unified,
              };
            },
            runOptions(params, reserved),
          ),
      ).then(() => result as LanguageModelV4GenerateResult);
    },

    wrapStream({ params, model }): Promise<LanguageModelV4StreamResult> {
      const reserved = estimate(params, defaultMaxTokens);
      const provider = providerName(model);
      return new Promise<LanguageModelV4StreamResult>((resolve, reject) => {
        withGenAiRequest(
          { attributes: requestAttributes(model, params), describe: describeSummary },
          () =>
            scheduler.run(
              async (context): Promise<CallSummary> => {
                let result: LanguageModelV4StreamResult;
                try {
                  result = await model.doStream({
                    ...params,
                    abortSignal: attemptSignal(params, context),
                  });
                } catch (error) {
                  throw errorFromAiSdk(error, provider, context.signal);
                }
                const summary: CallSummary = {
                  usage: undefined,
                  responseId: undefined,
                  responseModel: undefined,
                  finishReason: undefined,
                };
                let failure: unknown;
                const held = holdStream<LanguageModelV4StreamPart>(
                  result.stream,
                  context.signal,
                  (part) => {
                    if (part.type === "finish") {
                      summary.usage = part.usage;
                      summary.finishReason = part.finishReason.raw ?? part.finishReason.unified;
                    } else if (part.type === "response-metadata") {
                      summary.responseId ??= part.id;
                      summary.responseModel ??= part.modelId;
                    } else if (part.type === "error") failure ??= part.error;
                  },
                );
                // The caller reads the stream; this attempt (and its slot) lasts until it ends.
                resolve({ ...result, stream: held.stream });
                const how = await held.ended;
                if (how.kind === "aborted") {
                  throw context.signal.aborted && !(how.reason instanceof ProviderError)
                    ? how.reason
                    : streamFailure(provider, how.reason);
                }
                if (how.kind === "cancelled") throw how.error;
                if (how.kind === "error") throw streamFailure(provider, how.error);
                report(context, model, reserved, summary.usage, result.response?.headers);
                if (failure !== undefined) throw streamFailure(provider, failure);
                return summary;
              },
              runOptions(params, reserved),
            ),
        ).catch(reject);
      });
    },
  };
}
