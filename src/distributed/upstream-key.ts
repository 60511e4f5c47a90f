// The name of an upstream's shared budget: every process that calls the same provider API, at
// the same base URL, with the same key, shares one set of limits in Redis. A one-way digest: the
// key itself never reaches Redis (a 96-bit prefix of SHA-256 over a high-entropy key cannot be
// turned back into it), and two keys of one account get two budgets, as the provider counts them.
import { createHash } from "node:crypto";

export function upstreamKey(provider: string, baseUrl: string, apiKey: string): string {
  return createHash("sha256")
    .update(`salvo-upstream\0${provider}\0${baseUrl}\0${apiKey}`)
    .digest("hex")
    .slice(0, 24);
}
