// Serves a gateway over HTTP (Node's http server through @hono/node-server's adapter) and shuts
// it down gracefully: stop accepting, let the calls in flight finish within a grace period,
// then abort what is left and close every connection.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { ConfigError } from "../errors.ts";
import type { Gateway } from "./gateway.ts";

export type ListenOptions = {
  /** The address to bind. Another than loopback needs tenants with keys. @default "127.0.0.1" */
  host?: string | undefined;
  /** The port; 0 picks a free one. @default 8787 */
  port?: number | undefined;
  /** How long calls in flight may finish after a shutdown begins, ms. @default 30_000 */
  graceMs?: number | undefined;
  /** Aborting it shuts the server down gracefully (as `close()`). */
  signal?: AbortSignal | undefined;
  /**
   * Replace the global `Request` and `Response` with @hono/node-server's lighter ones (that
   * adapter's own default): answers are written without a stream copy, which saves CPU per
   * request. Off by default, because it changes globals the rest of the program may rely on
   * (`x instanceof Response` is false for fetch's own responses); `salvo serve` turns it on.
   * @default false
   */
  overrideGlobalObjects?: boolean | undefined;
};

export type GatewayServer = {
  /** `http://HOST:PORT`: the Anthropic SDK's base URL. */
  readonly origin: string;
  /** `http://HOST:PORT/v1`: the OpenAI SDK's base URL. */
  readonly baseUrl: string;
  readonly host: string;
  readonly port: number;
  readonly server: Server;
  /**
   * Stops accepting calls and connections, lets calls in flight finish for up to `graceMs`
   * (the listen option's by default), aborts the rest, closes every connection and the gateway.
   * Resolves with how many calls were still running when the grace period ended.
   */
  close(graceMs?: number): Promise<{ abandoned: number }>;
  [Symbol.asyncDispose](): Promise<void>;
};

const LOOPBACK = /^(127(\.\d{1,3}){3}|::1|localhost|\[::1\])$/i;

/** Whether `host` is a loopback address. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/** Serves `gateway` on `host:port`; resolves once it listens. */
export async function listen(
  gateway: Gateway,
  options: ListenOptions = {},
): Promise<GatewayServer> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 8787;
  const graceMs = options.graceMs ?? 30_000;
  if (!isLoopback(host) && !gateway.requiresKeys)
    throw new ConfigError({
      field: "host",
      expected:
        "a loopback address (127.0.0.1, ::1, localhost): binding another address needs tenants with keys, so that no one on the network can spend the upstream keys",
      got: host,
    });
  const listener = getRequestListener((request, env) => gateway.fetch(request, env), {
    overrideGlobalObjects: options.overrideGlobalObjects ?? false,
  });
  // Responses still being written: a call the gateway has answered is not over until its
  // answer has reached the socket, so a shutdown waits for these as well.
  let writing = 0;
  let drained: (() => void) | undefined;
  const server = createServer(
    { keepAlive: true, noDelay: true, keepAliveTimeout: 65_000 },
    (request, response) => {
      writing++;
      response.once("close", () => {
        if (--writing === 0) drained?.();
      });
      void listener(request, response);
    },
  );
  const written = (signal: AbortSignal) =>
    writing === 0 || signal.aborted
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          drained = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
  // Long streams and slow queues: the gateway, not Node, decides when a call has taken too long.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) =>
      reject(
        new ConfigError(
          { field: "port", expected: `a free port on ${host}`, got: port },
          { cause: error },
        ),
      );
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const origin = `http://${shown}:${bound}`;

  let closing: Promise<{ abandoned: number }> | undefined;
  const close = (grace = graceMs): Promise<{ abandoned: number }> => {
    closing ??= (async () => {
      gateway.drain();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Keep-alive connections that fall idle while calls finish are closed as they do.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      sweep.unref();
      const timeout = AbortSignal.timeout(Math.max(0, grace));
      await gateway.idle(timeout);
      await written(timeout);
      const abandoned = gateway.active;
      clearInterval(sweep);
      await gateway.close();
      server.closeAllConnections();
      await stopped;
      return { abandoned };
    })();
    return closing;
  };
  options.signal?.addEventListener("abort", () => void close(), { once: true });
  return {
    origin,
    baseUrl: `${origin}/v1`,
    host,
    port: bound,
    server,
    close,
    async [Symbol.asyncDispose]() {
      await close();
    },
  };
}
