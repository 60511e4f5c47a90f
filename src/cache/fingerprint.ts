// A request's fingerprint: what identifies its answer, so that identical requests can share one
// call (single-flight) and one stored answer (the response cache). It is the SHA-256 of the
// RFC 8785 canonical JSON of {version, provider, endpoint, path, body minus the fields that do
// not change the answer}. The API key is never part of it (it is not in the request at all);
// per-request ids (`custom_id`, the provider's request id) are not either.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { RequestInvalidError } from "../errors.ts";
import { MAX_JSON_DEPTH, valueTooDeep } from "../providers/json-depth.ts";
import type { ProviderRequest } from "../providers/provider.ts";

/** Bumped when the fingerprint's recipe changes: old cache entries then simply miss. */
export const FINGERPRINT_VERSION = 1;

/**
 * Body fields that do not determine the answer, left out of the fingerprint: end-user ids and
 * tags (`user`, `safety_identifier`, `metadata`), storage and routing hints (`store`,
 * `prompt_cache_key`, `service_tier`). `stream: false` and `stream_options` are dropped too:
 * the answer Salvo stores is the assembled JSON, the same either way (streamed requests are
 * never shared or cached, see `isShareable`).
 */
export const IGNORED_BODY_FIELDS: readonly string[] = [
  "user",
  "safety_identifier",
  "metadata",
  "store",
  "prompt_cache_key",
  "service_tier",
  "stream_options",
];

/** Paths whose answers are not sampled: no temperature, the same input gives the same answer. */
const DETERMINISTIC_PATH = /(^|\/)(embeddings|moderations)$/;

/** `/v1/chat/completions` and `/chat/completions` are one endpoint. */
export function canonicalPath(path: string): string {
  return path.startsWith("/v1/") ? path.slice(3) : path;
}

export type FingerprintOptions = {
  /** The provider's name (`openai`, `anthropic`, ...). */
  provider: string;
  /**
   * What identifies the server: its base URL (one provider name serves OpenAI, Azure, vLLM...).
   * @default "" (the provider name alone)
   */
  endpoint?: string | undefined;
};

/**
 * The canonical JSON the fingerprint hashes; exported for tests and for debugging a miss.
 * A body nested deeper than MAX_JSON_DEPTH is a RequestInvalidError (the canonicaliser recurses).
 */
export function fingerprintSource(request: ProviderRequest, options: FingerprintOptions): string {
  if (valueTooDeep(request.body))
    throw new RequestInvalidError(
      `the request body nests deeper than ${MAX_JSON_DEPTH} levels; it cannot be fingerprinted or sent`,
    );
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(request.body)) {
    if (value === undefined || IGNORED_BODY_FIELDS.includes(key)) continue;
    if (key === "stream" && value === false) continue;
    body[key] = value;
  }
  const endpoint = (options.endpoint ?? "").replace(/\/+$/, "");
  const source = canonicalize({
    v: FINGERPRINT_VERSION,
    provider: options.provider,
    endpoint,
    path: canonicalPath(request.path),
    body,
  });
  // canonicalize returns undefined only for a top-level undefined, never for an object.
  return source as string;
}

/** The request's fingerprint: 64 hex characters. */
export function fingerprint(request: ProviderRequest, options: FingerprintOptions): string {
  return createHash("sha256").update(fingerprintSource(request, options)).digest("hex");
}

/**
 * Whether identical copies of this request may share one answer: it is not streamed, and its
 * answer is not a sample — an explicit `temperature: 0`, or an endpoint without sampling
 * (embeddings, moderations). A request without a temperature is a sample: OpenAI's and
 * Anthropic's default temperature is 1, and two identical requests at temperature 1 are two
 * draws, which a caller may want on purpose (self-consistency voting). `force` shares samples
 * too.
 */
export function isShareable(request: ProviderRequest, force = false): boolean {
  if (request.body.stream === true) return false;
  if (force) return true;
  if (DETERMINISTIC_PATH.test(request.path)) return true;
  return request.body.temperature === 0;
}
