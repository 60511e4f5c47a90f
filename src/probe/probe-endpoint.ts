// `salvo probe` as a library call: a short, bounded sweep of an endpoint at increasing
// concurrency, and the settings it recommends (the knee of the throughput curve, the limits its
// rate-limit headers report).
import type { Provider, ProviderRequest } from "../providers/provider.ts";
import { type KneeOptions, type Recommendation, recommend } from "./knee.ts";
import { type SweepOptions, type SweepResult, sweep } from "./sweep.ts";

export type ProbeEndpointOptions = Omit<SweepOptions, "request"> & {
  /** The request sent at every level. @default `probeRequest(provider.name, model, maxTokens)` */
  request?: ProviderRequest | undefined;
  /** The model of the default request; required without `request`. */
  model?: string | undefined;
  /** max_tokens of the default request. @default 16 */
  maxTokens?: number | undefined;
  /** How the knee is found. @default the request's tokens per call from the provider's estimate */
  knee?: KneeOptions | undefined;
};

export type ProbeEndpointResult = {
  /** Each level's latency, throughput and errors, and why the sweep stopped. */
  sweep: SweepResult;
  /** The concurrency and limits to run with. */
  recommendation: Recommendation;
  /** The request that was sent. */
  request: ProviderRequest;
};

/** The probe request: a short prompt and a small answer, the same at every level. */
export function probeRequest(provider: string, model: string, maxTokens = 16): ProviderRequest {
  const messages = [{ role: "user", content: "Reply with the single word OK." }];
  const body = { model, max_tokens: maxTokens, messages };
  return provider === "anthropic"
    ? { path: "/messages", body }
    : { path: "/chat/completions", body };
}

/** Sweeps the endpoint and recommends settings; sends at most `maxRequests` requests. */
export async function probeEndpoint(options: ProbeEndpointOptions): Promise<ProbeEndpointResult> {
  const { request: given, model, maxTokens, knee, ...sweepOptions } = options;
  let request = given;
  if (request === undefined) {
    if (model === undefined) throw new TypeError("probeEndpoint: give a request or a model");
    request = probeRequest(options.provider.name, model, maxTokens);
  }
  const result = await sweep({ ...sweepOptions, request });
  const estimate = (options.provider as Provider).estimate(request);
  const recommendation = recommend(result, {
    tokensPerRequest: estimate.inputTokens + estimate.outputTokens,
    ...knee,
  });
  return { sweep: result, recommendation, request };
}
