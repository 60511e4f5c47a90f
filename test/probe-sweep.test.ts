// The probe's sweep on fake time against a modelled FIFO server (test/support/fake-llm-server.ts):
// the plateau rule, deterministically. The simulator test (probe-sim) runs the same shape over
// HTTP, where a busy machine's noise also plays.
import { describe, expect, it } from "vitest";
import { FakeClock } from "../src/core/fake-clock.ts";
import { recommend } from "../src/probe/knee.ts";
import { sweep } from "../src/probe/sweep.ts";
import type { Provider, ProviderRequest } from "../src/providers/provider.ts";
import { FakeLlmServer } from "./support/fake-llm-server.ts";

const request: ProviderRequest = { path: "/chat/completions", body: { model: "m" } };

function providerOn(server: FakeLlmServer): Provider {
  return {
    name: "fake",
    estimate: () => ({ requests: 1, tokens: 1, inputTokens: 1, outputTokens: 0 }),
    charged: () => ({ requests: 1, tokens: 1, inputTokens: 1, outputTokens: 0 }),
    async call(_request, options) {
      await server.call(8, options.signal);
      return {
        status: 200,
        body: {},
        usage: { inputTokens: 1, outputTokens: 8 },
        rateLimits: undefined,
        requestId: undefined,
      };
    },
  };
}

async function sweepOn(slots: number) {
  const clock = new FakeClock();
  const server = new FakeLlmServer(clock, { serviceMs: () => 100, slots });
  const running = sweep({ provider: providerOn(server), request, now: () => clock.now() });
  let done = false;
  void running.finally(() => {
    done = true;
  });
  while (!done) await clock.runAll();
  return { result: await running, server };
}

describe("the sweep's plateau", () => {
  it("a FIFO server of 4 slots: the sweep reads 40 a second at every level past the slots, stops once 8 and 16 add nothing, and recommends 4 to 5", async () => {
    const { result, server } = await sweepOn(4);
    const rates = result.levels.map((l) => [l.concurrency, Math.round(l.serverRps ?? 0)]);
    // Calls in flight over their typical latency: the server's 40 a second at every level past
    // its slots, though the short levels' first and last rounds wait less than the rest.
    expect(rates).toEqual([
      [1, 10],
      [2, 20],
      [4, 40],
      [8, 40],
      [16, 40],
    ]);
    expect(result.stoppedBecause).toBe("plateau");
    expect(server.maxInService).toBe(4);
    const rec = recommend(result);
    expect(rec.concurrency).toBeGreaterThanOrEqual(4);
    expect(rec.concurrency).toBeLessThanOrEqual(5);
  });

  it("a server that keeps up: no plateau, the levels run out", async () => {
    const { result } = await sweepOn(1_000);
    expect(result.stoppedBecause).toBe("levels-done");
    expect(result.levels.map((l) => Math.round(l.serverRps ?? 0))).toEqual([
      10, 20, 40, 80, 160, 320,
    ]);
  });
});
