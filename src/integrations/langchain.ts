// LangChain.js chat models through Salvo. Their clients take a `fetch` (`configuration.fetch` for
// ChatOpenAI, `clientOptions.fetch` for ChatAnthropic): with `salvoFetch` there, every request of
// `.invoke`, `.stream` and `.batch` is admitted, retried, reconciled and audited by Salvo. Their
// own retries (LangChain's AsyncCaller, 6 by default, on top of the SDK's) must be off, or a
// failure Salvo already retried would be retried again: these helpers set `maxRetries: 0` and
// refuse any other value. Nothing of LangChain is imported.
//
//   const model = new ChatOpenAI(langchainOpenAI(salvo, { model: "gpt-4o-mini" }));
//   await model.batch(prompts); // all submitted at once; Salvo's limits decide the pace

import type { Scheduler } from "../core/scheduler.ts";
import { ConfigError } from "../errors.ts";
import type { Salvo } from "../salvo.ts";
import {
  type SalvoFetch,
  type SalvoFetchOptions,
  type SalvoFetchTarget,
  salvoFetch,
} from "./salvo-fetch.ts";

type Target = Salvo | Scheduler | SalvoFetchTarget | SalvoFetch;

function fetchFor(target: Target, options: SalvoFetchOptions): SalvoFetch {
  return typeof target === "function" ? target : salvoFetch(target, options);
}

function noRetries(maxRetries: unknown, model: string): void {
  if (maxRetries !== undefined && maxRetries !== 0) {
    throw new ConfigError({
      field: "maxRetries",
      where: `${model} fields`,
      expected: "0 (or unset): Salvo is the one retry authority",
      got: maxRetries,
    });
  }
}

/**
 * ChatOpenAI / OpenAIEmbeddings fields whose client sends through Salvo: `fields` with
 * `configuration.fetch` set to `salvoFetch(target)` (or `target` itself when it is one) and
 * `maxRetries: 0`.
 */
export function langchainOpenAI<
  F extends { maxRetries?: number | undefined; configuration?: object | undefined },
>(
  target: Target,
  fields: F = {} as F,
  options: SalvoFetchOptions = {},
): F & { maxRetries: 0; configuration: NonNullable<F["configuration"]> & { fetch: SalvoFetch } } {
  noRetries(fields.maxRetries, "ChatOpenAI");
  return {
    ...fields,
    maxRetries: 0,
    configuration: { ...fields.configuration, fetch: fetchFor(target, options) },
  } as F & {
    maxRetries: 0;
    configuration: NonNullable<F["configuration"]> & { fetch: SalvoFetch };
  };
}

/**
 * ChatAnthropic fields whose client sends through Salvo: `fields` with `clientOptions.fetch` set
 * to `salvoFetch(target)` (or `target` itself when it is one) and `maxRetries: 0`.
 */
export function langchainAnthropic<
  F extends { maxRetries?: number | undefined; clientOptions?: object | undefined },
>(
  target: Target,
  fields: F = {} as F,
  options: SalvoFetchOptions = {},
): F & { maxRetries: 0; clientOptions: NonNullable<F["clientOptions"]> & { fetch: SalvoFetch } } {
  noRetries(fields.maxRetries, "ChatAnthropic");
  return {
    ...fields,
    maxRetries: 0,
    clientOptions: { ...fields.clientOptions, fetch: fetchFor(target, options) },
  } as F & {
    maxRetries: 0;
    clientOptions: NonNullable<F["clientOptions"]> & { fetch: SalvoFetch };
  };
}
