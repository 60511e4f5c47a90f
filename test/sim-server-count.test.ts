// Regression: a request that ends synchronously as its service starts (an injected 500 with a
// free slot) used to stay counted in the server, so `maxInServer` grew by one per such request
// and no longer showed how many requests a client really had at the server at once.
import OpenAI from "openai";
import { expect, it } from "vitest";
import { startSimulator } from "../src/sim/index.ts";
import { rejection } from "./support/rejection.ts";

it("a request failed at the start of its service leaves the server count as it found it", async () => {
  const sim = await startSimulator({ capacity: { slots: 4 }, faults: { p500: 1 } });
  try {
    const client = new OpenAI({ baseURL: sim.baseUrl, apiKey: "sk-test-count", maxRetries: 0 });
    for (let i = 0; i < 5; i++) {
      const error = await rejection(
        client.chat.completions.create({
          model: "m",
          messages: [{ role: "user", content: `${i}` }],
        }),
      );
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    }
    const stats = sim.stats();
    expect(stats.byStatus).toEqual({ 500: 5 });
    expect(stats.maxInServer).toBe(1);
    expect(stats.maxInService).toBe(1);
  } finally {
    await sim.close();
  }
});
