// What wrapOpenAI and wrapAnthropic share: a copy of the SDK client whose every request goes
// through `salvoFetch` (the SDK's own retries and timeout off), and `create` methods that keep
// the SDK's promise (`.withResponse()`, `.asResponse()`) but reject with Salvo's typed errors.

import { AbortedError, SalvoError } from "../errors.ts";
import { errorFromSdk } from "../providers/sdk-errors.ts";

/** The SDKs' own timeout is effectively off: the scheduler's per-attempt timeout governs. */
export const SDK_TIMEOUT_MS = 24 * 60 * 60 * 1000;

const NEVER_ABORTED = new AbortController().signal;

/**
 * Salvo's typed error for what the SDK threw: the Salvo error underneath (a fetch rejected by
 * Salvo comes back wrapped as the SDK's connection error), or the provider's answer classified
 * as Salvo classifies it. A caller's abort is an AbortedError.
 */
export function salvoErrorOf(error: unknown, provider: string): unknown {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e instanceof SalvoError) return e;
    e = e.cause;
  }
  if (error instanceof Error && error.constructor.name === "APIUserAbortError") {
    return new AbortedError("the request was aborted by its caller", { cause: error });
  }
  return errorFromSdk(error, provider, NEVER_ABORTED);
}

type SdkPromise<T> = Promise<T> & {
  withResponse(): Promise<unknown>;
  asResponse(): Promise<Response>;
};

/** The SDK's promise, with Salvo's typed errors on every path out of it. */
export function withSalvoErrors<T>(promise: SdkPromise<T>, provider: string): SdkPromise<T> {
  const map = (error: unknown): never => {
    throw salvoErrorOf(error, provider);
  };
  const mapped = promise.then(undefined, map) as SdkPromise<T>;
  mapped.withResponse = () => promise.withResponse().catch(map);
  mapped.asResponse = () => promise.asResponse().catch(map);
  return mapped;
}

/**
 * `client` with the methods at `paths` (e.g. `chat.completions.create`) replaced by `wrap` of
 * the original, bound to its resource. Everything else is the client's own.
 */
export function replaceMethods<C extends object>(
  client: C,
  paths: readonly string[],
  wrap: (method: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown,
): C {
  type Tree = Map<string, Tree | true>;
  const tree: Tree = new Map();
  for (const path of paths) {
    const parts = path.split(".");
    let node = tree;
    parts.forEach((part, i) => {
      if (i === parts.length - 1) node.set(part, true);
      else {
        let next = node.get(part);
        if (next === undefined || next === true) {
          next = new Map();
          node.set(part, next);
        }
        node = next;
      }
    });
  }
  const proxy = <T extends object>(target: T, node: Tree): T => {
    const cache = new Map<string | symbol, unknown>();
    return new Proxy(target, {
      get(object, property, receiver) {
        const entry = typeof property === "string" ? node.get(property) : undefined;
        const value = Reflect.get(object, property, receiver);
        if (entry === undefined || value === undefined || value === null) return value;
        let made = cache.get(property);
        if (made === undefined) {
          made =
            entry === true
              ? wrap((value as (...args: unknown[]) => unknown).bind(object))
              : proxy(value as object, entry);
          cache.set(property, made);
        }
        return made;
      },
    });
  };
  return proxy(client, tree);
}
