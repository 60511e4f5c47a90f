// The set-up every gateway end-to-end test shares: a temporary directory, simulators as
// upstreams, gateways served on free ports, clients whose every response is recorded, and, after
// each test, the check that no upstream key appears in any response, header, access-log line,
// file or CLI output the test saw.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import {
  type AccessRecord,
  createGateway,
  type Gateway,
  type GatewayOptions,
  type GatewayServer,
  listen,
} from "../../src/gateway/index.ts";
import type { SimConfigInput, SimHandle } from "../../src/sim/index.ts";
import { useWorkspace } from "./workspace.ts";

/** Fake upstream keys: distinctive, so that a leak anywhere is found by a plain search. */
export const UPSTREAM_OPENAI_KEY = "sk-upstream-openai-DO-NOT-LEAK-5c1f0b7e2a9d";
export const UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-DO-NOT-LEAK-9d4e7a3b1c8f";
export const UPSTREAM_KEYS = [UPSTREAM_OPENAI_KEY, UPSTREAM_ANTHROPIC_KEY];

export type GatewayWorld = {
  readonly dir: string;
  simulator(config?: SimConfigInput): Promise<SimHandle>;
  /** A gateway over `sim` (OpenAI and Anthropic upstreams) served on a free port. */
  serve(
    sim: SimHandle,
    options?: Partial<GatewayOptions>,
    upstream?: Partial<GatewayOptions["upstreams"][number]>,
  ): Promise<{ gateway: Gateway; server: GatewayServer; access: AccessRecord[] }>;
  /** A fetch that records every response (headers and body) for the leak check. */
  readonly fetch: typeof fetch;
  /** Records text the test saw elsewhere (a process's output) for the leak check. */
  saw(text: string): void;
};

export function useGatewayWorld(prefix: string): GatewayWorld {
  const workspace = useWorkspace(prefix);
  const servers: GatewayServer[] = [];
  const seen: string[] = [];
  const pending: Array<Promise<unknown>> = [];
  const record = (text: string) => {
    seen.push(text);
  };
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    record(`${response.status} ${[...response.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}`);
    pending.push(
      response
        .clone()
        .text()
        .then(record, () => {}),
    );
    return response;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close(1000)));
    await Promise.allSettled(pending.splice(0));
    const files = await filesUnder(workspace.dir);
    const texts = [
      ...seen.splice(0),
      ...(await Promise.all(files.map((f) => readFile(f, "utf8")))),
    ];
    for (const key of UPSTREAM_KEYS)
      expect(
        texts.filter((text) => text.includes(key)).map((t) => t.slice(0, 200)),
        `the upstream key ${key.slice(0, 12)}... leaked`,
      ).toEqual([]);
  });
  return {
    get dir() {
      return workspace.dir;
    },
    simulator: (config) => workspace.simulator(config),
    async serve(sim, options = {}, upstream = {}) {
      const access: AccessRecord[] = [];
      const gateway = createGateway({
        upstreams: [
          { provider: "openai", baseUrl: sim.baseUrl, apiKey: UPSTREAM_OPENAI_KEY, ...upstream },
          {
            provider: "anthropic",
            baseUrl: sim.origin,
            apiKey: UPSTREAM_ANTHROPIC_KEY,
            ...upstream,
          },
        ],
        processMetrics: false,
        onAccess: (r) => {
          access.push(r);
          record(JSON.stringify(r));
        },
        ...options,
      });
      const server = await listen(gateway, { port: 0 });
      servers.push(server);
      return { gateway, server, access };
    },
    fetch: recordingFetch,
    saw: record,
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: Array<{ name: string; isDirectory(): boolean; isFile(): boolean }>;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}
