// `salvo/gateway`: the OpenAI- and Anthropic-compatible gateway behind `salvo serve`, as a
// library. `createGateway(options).fetch` is a `(Request) => Promise<Response>` handler; `listen`
// serves it over HTTP with a graceful shutdown; `loadGatewayConfig` reads a gateway.yaml.
//
//   const gateway = createGateway({ upstreams: [{ provider: "openai", baseUrl, apiKey }] });
//   const server = await listen(gateway, { port: 8787 });
//   ... await server.close();

export {
  type AccessRecord,
  createGateway,
  type Gateway,
  type GatewayOptions,
  type NodeEnv,
} from "./gateway.ts";
export { type GatewayConfig, loadGatewayConfig, parseGatewayConfig } from "./gateway-config.ts";
export type { RefusalReason } from "./gateway-stats.ts";
export type {
  CallCounts,
  GatewayStatus,
  HistorySample,
  TenantStatus,
  UpstreamStatus,
} from "./gateway-status.ts";
export { type GatewayServer, isLoopback, type ListenOptions, listen } from "./listen.ts";
export type { TenantOptions } from "./tenant.ts";
export type { UpstreamOptions } from "./upstream.ts";
export type { UpstreamKind } from "./upstream-provider.ts";
