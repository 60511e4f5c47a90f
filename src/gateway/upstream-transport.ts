// How the gateway's provider talks HTTP to an upstream. The default is Node's own http/https
// client with a keep-alive agent per upstream: a proxy's every request pays for its client, and
// node:http costs a fraction of fetch's WHATWG streams and header objects. A `fetch` can be given
// instead (a proxy, a custom dispatcher, a test double).
import {
  Agent as HttpAgent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/** Response headers, read by name (case-insensitive) or iterated, lowercase names. */
export interface HeaderBag {
  get(name: string): string | null;
  [Symbol.iterator](): IterableIterator<[string, string]>;
}

export type TransportResponse = {
  status: number;
  headers: HeaderBag;
  /** The whole body as text. */
  text(): Promise<string>;
  /** The body as it arrives (once). */
  chunks(): AsyncIterable<Uint8Array>;
  /** Stops reading the body and frees the connection. */
  cancel(): void;
};

export interface UpstreamTransport {
  send(
    method: "GET" | "POST",
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<TransportResponse>;
  /** Closes idle connections; in-flight requests end on their own. */
  close(): void;
}

/** Node's incoming headers as a HeaderBag (a repeated header's values joined by ", "). */
class NodeHeaders implements HeaderBag {
  readonly #headers: IncomingHttpHeaders;
  constructor(headers: IncomingHttpHeaders) {
    this.#headers = headers;
  }
  get(name: string): string | null {
    const value = this.#headers[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (const [name, value] of Object.entries(this.#headers))
      if (value !== undefined) yield [name, Array.isArray(value) ? value.join(", ") : value];
  }
}

/**
 * Every idle connection is kept for reuse (Node's default keeps 256 and closes the rest, so a
 * gateway with more calls in flight than that would reconnect on every burst); the gateway's
 * concurrency limit is what bounds them.
 */
const AGENT = { keepAlive: true, scheduling: "lifo", maxFreeSockets: 65_536 } as const;

/** A URL's parts as node:http takes them, so that a request does not parse its URL again. */
type Target = {
  secure: boolean;
  hostname: string;
  port: string;
  path: string;
  auth: string | undefined;
};

export class NodeHttpTransport implements UpstreamTransport {
  readonly #http = new HttpAgent(AGENT);
  readonly #https = new HttpsAgent(AGENT);
  /** The few URLs an upstream is called at (its paths), parsed once each. */
  readonly #targets = new Map<string, Target>();

  #target(url: string): Target {
    let target = this.#targets.get(url);
    if (target === undefined) {
      const parsed = new URL(url);
      target = {
        secure: parsed.protocol === "https:",
        // node:http wants an IPv6 literal without its brackets.
        hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: parsed.port,
        path: `${parsed.pathname}${parsed.search}`,
        auth:
          parsed.username === "" && parsed.password === ""
            ? undefined
            : `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`,
      };
      if (this.#targets.size >= 256) this.#targets.clear();
      this.#targets.set(url, target);
    }
    return target;
  }

  send(
    method: "GET" | "POST",
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<TransportResponse> {
    return new Promise<TransportResponse>((resolve, reject) => {
      const { secure, hostname, port, path, auth } = this.#target(url);
      const outgoing: Record<string, string | number> = { ...headers };
      if (body !== undefined) outgoing["content-length"] = Buffer.byteLength(body);
      const req = (secure ? httpsRequest : request)({
        protocol: secure ? "https:" : "http:",
        hostname,
        port,
        path,
        auth,
        method,
        headers: outgoing,
        agent: secure ? this.#https : this.#http,
        signal,
      });
      req.once("error", reject);
      req.once("response", (res: IncomingMessage) => {
        req.off("error", reject);
        // A failure after the head surfaces while the body is read.
        req.on("error", () => {});
        resolve(respond(res));
      });
      req.end(body);
    });
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

function respond(res: IncomingMessage): TransportResponse {
  return {
    status: res.statusCode ?? 0,
    headers: new NodeHeaders(res.headers),
    text: () => readAll(res),
    async *chunks() {
      for await (const chunk of res) yield chunk as Uint8Array;
      if (!res.complete) throw new Error(CUT_OFF);
    },
    cancel() {
      res.destroy();
    },
  };
}

const CUT_OFF = "the connection closed before the answer was complete";

/** A Node response's whole body as text (events, not an async iterator: this runs per call). */
function readAll(res: IncomingMessage): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (chunk: Buffer) => chunks.push(chunk));
    res.once("error", reject);
    res.once("close", () => {
      if (!res.complete) reject(new Error(CUT_OFF));
    });
    res.once("end", () => {
      if (!res.complete) return reject(new Error(CUT_OFF));
      resolve(
        chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8"),
      );
    });
  });
}

/** The same over a `fetch`. */
export class FetchTransport implements UpstreamTransport {
  readonly #fetch: typeof fetch;
  constructor(fetchImpl: typeof fetch) {
    this.#fetch = fetchImpl;
  }

  async send(
    method: "GET" | "POST",
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<TransportResponse> {
    const response = await this.#fetch(url, { method, headers, body, signal });
    return {
      status: response.status,
      headers: response.headers as unknown as HeaderBag,
      text: () => response.text(),
      async *chunks() {
        const reader = response.body!.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return;
            yield value;
          }
        } finally {
          reader.releaseLock();
        }
      },
      cancel() {
        response.body?.cancel().catch(() => {});
      },
    };
  }

  close(): void {}
}
