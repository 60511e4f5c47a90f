// Keeps API keys out of everything Salvo writes or prints. A provider knows the key it was built
// with, whatever the environment variable's name, and scrubs it from every result and error
// before they leave the provider layer: a server that echoes the key (in a header, an error
// message, an answer) cannot put it in the output, the journal, the cache, the audit log or the
// progress lines. Each key is also registered process-wide, like GitHub Actions' `add-mask`, so
// the audit log's redaction (and any writer that asks) masks it too.

/** What a secret is replaced with. */
export const REDACTED = "[REDACTED]";

/**
 * Shorter strings are never treated as secrets: replacing them would garble ordinary text.
 * Real API keys are 32 characters or more; local servers' keys are often short words.
 */
export const MIN_SECRET_LENGTH = 8;

const registry = new Set<string>();
let snapshot: readonly string[] = [];

/** Masks `secret` in every log written by this process from now on (see `registeredSecrets`). */
export function registerSecret(secret: string | undefined | null): void {
  if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH || registry.has(secret))
    return;
  registry.add(secret);
  snapshot = Object.freeze([...registry]);
}

/** Every secret registered in this process (the keys of the providers built so far). */
export function registeredSecrets(): readonly string[] {
  return snapshot;
}

/** `text` with every registered secret replaced by REDACTED: for a writer of last resort. */
export function redactRegistered(text: string): string {
  return registry.size === 0 ? text : new SecretScrubber(registry).text(text);
}

/** Replaces a fixed set of secrets in strings, values, errors and headers. */
export class SecretScrubber {
  readonly #secrets: readonly string[];

  /** Each string of `minLength` or more characters is a secret; others are ignored. */
  constructor(secrets: Iterable<string | undefined | null>, minLength = MIN_SECRET_LENGTH) {
    const kept = new Set<string>();
    for (const secret of secrets)
      if (typeof secret === "string" && secret.length >= Math.max(1, minLength)) kept.add(secret);
    // Longest first, so a secret that contains another is replaced whole.
    this.#secrets = [...kept].sort((a, b) => b.length - a.length);
  }

  /** Whether there is anything to scrub. */
  get active(): boolean {
    return this.#secrets.length > 0;
  }

  /** Whether `text` contains a secret. */
  found(text: string): boolean {
    for (const secret of this.#secrets) if (text.includes(secret)) return true;
    return false;
  }

  text(text: string): string {
    let out = text;
    for (const secret of this.#secrets)
      if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  }

  /**
   * `value` with the secrets replaced in every string (keys included); the same object when
   * there is none, else a copy of only the containers on the way to one. Iterative: any depth.
   */
  value<T>(value: T): T {
    if (!this.active || !this.#contains(value)) return value;
    return this.#copy(value) as T;
  }

  /** Headers (fetch `Headers` or a plain record) with the secrets replaced in their values. */
  headers<H>(headers: H): H {
    if (!this.active || headers === null || typeof headers !== "object") return headers;
    if (headers instanceof Headers) {
      let dirty = false;
      for (const [, value] of headers) if (this.found(value)) dirty = true;
      if (!dirty) return headers;
      const clean = new Headers();
      for (const [name, value] of headers) clean.append(name, this.text(value));
      return clean as H;
    }
    return this.value(headers);
  }

  /**
   * Scrubs an error in place (its message, stack and every own field: the SDKs' `error` body,
   * `headers`, `requestID`, ...), and the errors in its `cause` chain; returns it. In place, so
   * it keeps its class and fields.
   */
  error<E>(error: E): E {
    if (!this.active) return error;
    const seen = new Set<unknown>();
    for (let e: unknown = error; e instanceof Error && !seen.has(e); e = e.cause) {
      seen.add(e);
      if (this.found(e.message)) e.message = this.text(e.message);
      if (typeof e.stack === "string" && this.found(e.stack)) e.stack = this.text(e.stack);
      const fields = e as unknown as Record<string, unknown>;
      for (const key of Object.keys(fields)) {
        const field = fields[key];
        if (field instanceof Error) continue; // scrubbed in place when the chain reaches it
        const clean =
          typeof field === "string"
            ? this.text(field)
            : field instanceof Headers
              ? this.headers(field)
              : this.value(field);
        if (clean !== field)
          Object.defineProperty(e, key, {
            value: clean,
            writable: true,
            configurable: true,
            enumerable: true,
          });
      }
    }
    return error;
  }

  #contains(value: unknown): boolean {
    const stack: unknown[] = [value];
    while (stack.length > 0) {
      const next = stack.pop();
      if (typeof next === "string") {
        if (this.found(next)) return true;
      } else if (Array.isArray(next)) {
        for (const item of next) stack.push(item);
      } else if (next !== null && typeof next === "object") {
        for (const [key, item] of Object.entries(next)) {
          if (this.found(key)) return true;
          stack.push(item);
        }
      }
    }
    return false;
  }

  #copy(value: unknown): unknown {
    // Iterative deep copy with every string scrubbed; plain data only (an answer parsed from
    // JSON), so no cycles. Only runs when a secret was found.
    const root: { value: unknown } = { value };
    const work: Array<{ holder: Record<string | number, unknown>; key: string | number }> = [
      { holder: root as unknown as Record<string, unknown>, key: "value" },
    ];
    while (work.length > 0) {
      const { holder, key } = work.pop()!;
      const item = holder[key];
      if (typeof item === "string") {
        holder[key] = this.text(item);
      } else if (Array.isArray(item)) {
        const copy = [...item];
        holder[key] = copy;
        for (let i = 0; i < copy.length; i++) work.push({ holder: copy as never, key: i });
      } else if (item !== null && typeof item === "object") {
        const copy: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(item)) copy[this.text(k)] = v;
        holder[key] = copy;
        for (const k of Object.keys(copy)) work.push({ holder: copy, key: k });
      }
    }
    return root.value;
  }
}
