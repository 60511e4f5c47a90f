// The simulated LLM provider, as the subpath export `salvo/sim`: an HTTP server that answers the
// OpenAI (chat completions, responses, embeddings) and Anthropic (messages) APIs with realistic
// capacity, rate limits, headers, errors and faults.
//
//   const sim = await startSimulator({ capacity: { slots: 4 }, limits: { rpm: 600 } });
//   const openai = new OpenAI({ baseURL: sim.baseUrl, apiKey: "sk-test", maxRetries: 0 });
//   const anthropic = new Anthropic({ baseURL: sim.origin, apiKey: "sk-test", maxRetries: 0 });
//   ...
//   sim.stats(); await sim.close();

export type { BatchApiConfig, BatchApiInput } from "./batch-config.ts";
export { batchTurnaroundMs } from "./batch-config.ts";
export type { BatchStats } from "./batch-store.ts";
export { expectedEmbedding } from "./embedding-vector.ts";
export type { FaultKind } from "./fault-picker.ts";
export { FAULT_KINDS } from "./fault-picker.ts";
export { formatGoDuration } from "./go-duration.ts";
export { loadScenario, parseScenario, readScenarioFile } from "./load-scenario.ts";
export type { MarkerOptions, SimContentPart, SimMessage } from "./marker.ts";
export { expectedMarker } from "./marker.ts";
export { countPromptTokens } from "./prompt-tokens.ts";
export type { ChargedTotals } from "./rate-limiter.ts";
export type {
  CapacityInput,
  FaultsInput,
  LatencyInput,
  LimitsInput,
  OutputInput,
  PathInput,
  PoolConfig,
  SimConfig,
  SimConfigInput,
} from "./sim-config.ts";
export { mergeSimConfig, resolveSimConfig, validateSimConfig } from "./sim-config.ts";
export type { RefusalCounts, SimStats, TimelineEntry } from "./sim-stats.ts";
export type { SimHandle } from "./simulator.ts";
export { startSimulator } from "./simulator.ts";
export type { Endpoint } from "./wire.ts";
