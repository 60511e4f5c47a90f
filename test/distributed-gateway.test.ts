// Several `salvo serve --redis URL` gateways (real processes) behind one "load balancer" (clients
// spread round-robin over them) share one upstream budget through a real redis-server: together
// they hold the upstream's RPM with no 429, where each alone would believe it owned the limit.
import { type ChildProcess, spawn } from "node:child_process";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SimStats } from "../src/sim/index.ts";
import {
  REDIS_MISSING,
  type RedisServer,
  redisServerPath,
  startRedisServer,
} from "./support/redis-server.ts";
import { useWorkspace } from "./support/workspace.ts";

const BIN = new URL("../bin/salvo.js", import.meta.url).pathname;
const UPSTREAM_KEY = "sk-upstream-gateway-shared-0000";

type Gateway = { child: ChildProcess; baseUrl: string; out: () => string; err: () => string };

async function startGateway(args: string[]): Promise<Gateway> {
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--port", "0", "--access-log", "none", ...args],
    {
      env: { ...process.env, OPENAI_API_KEY: UPSTREAM_KEY },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d;
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d;
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  while (!out.includes("\n")) {
    const done = await Promise.race([
      exited.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 20)),
    ]);
    if (done) throw new Error(`salvo serve exited before listening: ${err}`);
  }
  return { child, baseUrl: out.split("\n")[0]!, out: () => out, err: () => err };
}

async function stop(gateway: Gateway): Promise<void> {
  if (gateway.child.exitCode !== null) return;
  const exited = new Promise((resolve) => gateway.child.on("exit", resolve));
  gateway.child.kill("SIGTERM");
  await exited;
}

function span(stats: SimStats): number {
  return (
    Math.max(...stats.timeline.map((e) => e.endMs)) -
    Math.min(...stats.timeline.map((e) => e.arrivalMs))
  );
}

describe.skipIf(redisServerPath === undefined)(
  `gateways sharing one budget${redisServerPath ? "" : ` (${REDIS_MISSING})`}`,
  () => {
    let redis: RedisServer;
    const workspace = useWorkspace("salvo-gateways-");
    const gateways: Gateway[] = [];
    beforeAll(async () => {
      redis = await startRedisServer();
    });
    afterAll(async () => {
      await redis?.close();
    });
    afterEach(async () => {
      await Promise.all(gateways.splice(0).map(stop));
    });

    it("3 `salvo serve --redis` processes, clients spread over them, hold the upstream's RPM together with no 429", async () => {
      const rpm = 1_200;
      const sim = await workspace.simulator({
        seed: 9,
        latency: { ttftMs: 100 },
        output: { tokens: 8 },
        limits: { rpm, burstSeconds: 1 },
      });
      for (let g = 0; g < 3; g++)
        gateways.push(
          await startGateway([
            "--base-url",
            sim.baseUrl,
            "--rpm",
            String(rpm),
            "--concurrency",
            "16",
            "--redis",
            redis.url,
          ]),
        );
      const clients = gateways.map(
        (g) => new OpenAI({ baseURL: g.baseUrl, apiKey: "client-key", maxRetries: 0 }),
      );
      sim.reset();
      const requests = 200;
      let next = 0;
      const statuses: number[] = [];
      // 30 callers at once, each request to the next gateway in turn (a round-robin balancer).
      await Promise.all(
        Array.from({ length: 30 }, async () => {
          for (;;) {
            const i = next++;
            if (i >= requests) return;
            const answer = await clients[i % clients.length]!.chat.completions.create({
              model: "gpt-4o-mini",
              max_tokens: 8,
              messages: [{ role: "user", content: `question ${i}` }],
            });
            statuses.push(answer.choices.length > 0 ? 200 : 0);
          }
        }),
      );
      expect(statuses).toHaveLength(requests);
      const stats = sim.stats();
      expect(stats.byStatus["429"] ?? 0).toBe(0);
      expect(stats.completions).toBe(requests);
      // Held: as fast as the upstream's bucket allows (its burst of 20, then 20 a second), and no faster.
      const limitMs = (60_000 * (requests - rpm / 60)) / rpm;
      const spanMs = span(stats);
      console.info(
        `3 gateways sharing Redis: ${requests} requests in ${Math.round(spanMs)} ms at the upstream (the limit allows ${Math.round(limitMs)} ms at best), 0 429s`,
      );
      expect(spanMs).toBeGreaterThanOrEqual(limitMs * 0.95);
      expect(spanMs).toBeLessThanOrEqual(limitMs * 1.2 + 1_000);
      for (const gateway of gateways)
        expect(gateway.out() + gateway.err()).not.toContain(UPSTREAM_KEY);
    }, 120_000);

    it("refuses to start, clearly, when --redis cannot be reached", async () => {
      const sim = await workspace.simulator();
      await expect(
        startGateway(["--base-url", sim.baseUrl, "--redis", "redis://127.0.0.1:1"]),
      ).rejects.toThrow(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    });
  },
);
