// One request of a simulated batch, answered: the same answer (marker, length, usage) the
// real-time endpoint gives the same prompt, or the error the endpoint would answer with, in the
// endpoint's own wire shape. A batch's request is judged when the batch is created (its tokens,
// whether it fails) and its body is written when the batch ends.

import { outputLength } from "./latency-model.ts";
import { answerHead, answerText, echoOf, expectedMarker, markerKey } from "./marker.ts";
import { countPromptTokens } from "./prompt-tokens.ts";
import { hashUniform } from "./seeded-random.ts";
import type { SimConfig } from "./sim-config.ts";
import { type ChatRequest, isBadRequest, type Wire } from "./wire.ts";

/** A batch request as judged at creation. */
export type JudgedRequest =
  | {
      ok: true;
      request: ChatRequest;
      marker: string;
      promptTokens: number;
      outputTokens: number;
      capped: boolean;
    }
  /** The endpoint refuses it (400), or the simulator's `pError` fails it (500). */
  | {
      ok: false;
      kind: "bad_request";
      message: string;
      param: string | null;
      code?: string | undefined;
    }
  | { ok: false; kind: "server_error" };

/** Reads one request body as `wire` does; `fail` is the per-request failure draw. */
export function judgeRequest(
  wire: Wire,
  body: unknown,
  config: Pick<SimConfig, "seed" | "output">,
  fail: boolean,
): JudgedRequest {
  const request = wire.parse(body);
  if (isBadRequest(request))
    return {
      ok: false,
      kind: "bad_request",
      message: request.error,
      param: request.param,
      code: request.code,
    };
  if (request.stream)
    return {
      ok: false,
      kind: "bad_request",
      message: "Streaming is not supported in a batch: remove `stream` from the request.",
      param: "stream",
    };
  if (fail) return { ok: false, kind: "server_error" };
  const marker = expectedMarker(request.messages, { system: request.system });
  const promptTokens = request.promptTokens ?? countPromptTokens(request.messages, request.system);
  const maxTokens = request.maxTokens ?? config.output.defaultMaxTokens;
  const u = hashUniform(config.seed, markerKey(marker));
  const length = request.embedding
    ? { tokens: 0, capped: false }
    : outputLength(config.output.range, maxTokens, u);
  return {
    ok: true,
    request,
    marker,
    promptTokens,
    outputTokens: length.tokens,
    capped: length.capped,
  };
}

/** The answer to a judged request: HTTP status and the parsed body the endpoint would send. */
export function answerOf(
  wire: Wire,
  judged: JudgedRequest,
  config: Pick<SimConfig, "output">,
  ids: { answerId: string; requestId: string },
): { status: number; body: unknown } {
  if (!judged.ok) {
    const error =
      judged.kind === "server_error"
        ? wire.error({ kind: "server_error" }, ids.requestId)
        : wire.error(
            {
              kind: "bad_request",
              message: judged.message,
              param: judged.param,
              code: judged.code,
            },
            ids.requestId,
          );
    return { status: error.status, body: JSON.parse(error.body) };
  }
  const head = answerHead(judged.marker, echoOf(judged.request.messages, config.output.echoChars));
  const text = answerText(head, judged.outputTokens);
  const body = wire.completion({
    id: ids.answerId,
    model: judged.request.model,
    text,
    promptTokens: judged.promptTokens,
    outputTokens: judged.outputTokens,
    capped: judged.capped,
    includeUsage: true,
    request: judged.request,
  });
  return { status: 200, body: JSON.parse(body) };
}
