// The dashboard in a real headless Chromium (Debian's package, driven by playwright-core): during
// a run it shows the same in-flight and request counts as /metrics, and its charts draw. A
// screenshot is kept in test-artifacts/ (SALVO_UPDATE_SCREENSHOT=1 also writes the README's,
// docs/gateway-dashboard.png).
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { Pricing } from "../src/cost/pricing.ts";
import { useGatewayWorld } from "./support/gateway-world.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", process.env.CHROMIUM_PATH].find(
  (path): path is string => path !== undefined && path !== "" && existsSync(path),
);
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const world = useGatewayWorld("salvo-gateway-dashboard-");
const ADMIN = "gw-dashboard-admin-key-0123456789";
const BULK = "gw-dashboard-bulk-key-0123456789";

/** A figure of /metrics, summed over the series that match `labels`. */
function metric(text: string, name: string, labels: string): number {
  let total = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name}{`) && line.includes(labels))
      total += Number(line.split(" ").at(-1));
  return total;
}

describe("the dashboard in headless Chromium", () => {
  it.skipIf(CHROMIUM === undefined)(
    `shows the same in-flight and request counts as /metrics during a run${CHROMIUM === undefined ? " (skipped: no chromium at /usr/bin/chromium; .ci/run installs it, or set CHROMIUM_PATH)" : ""}`,
    async () => {
      // Answers of ~300 ms, and some hang: the run settles with the slots held by hung calls
      // and the rest queued, a state that stays put while the page and /metrics are compared.
      const sim = await world.simulator({
        seed: 11,
        latency: { ttftMs: 300, jitter: 0.3 },
        faults: { pHang: 0.08 },
      });
      const { server, gateway } = await world.serve(
        sim,
        {
          pricing: new Pricing({ "sim-gpt": { input: 0.15, output: 0.6 } }),
          tenants: [
            { name: "claims", keys: [ADMIN], priority: 10, admin: true },
            { name: "bulk", keys: [BULK], maxCostUsd: 5 },
          ],
        },
        { concurrency: 6, requestsPerMinute: 3000 },
      );
      const calls = Array.from({ length: 120 }, (_, i) =>
        world
          .fetch(`${server.baseUrl}/chat/completions`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${i % 4 === 0 ? ADMIN : BULK}`,
              "x-salvo-context": `claim_id=C${i % 7}`,
            },
            body: JSON.stringify({
              model: "sim-gpt",
              max_tokens: 8,
              messages: [{ role: "user", content: `line item ${i}` }],
            }),
          })
          .then((r) => r.text())
          .catch(() => ""),
      );
      const profile = await mkdtemp(join(tmpdir(), "salvo-chromium-"));
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: FLAGS,
        viewport: { width: 1280, height: 900 },
      });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (error) => errors.push(error.message));
        await page.goto(`${server.origin}/`);
        // The gateway has tenants: the page asks for a key; an admin's shows every tenant.
        await page.waitForSelector("#login:not([hidden])");
        await page.fill("#key", ADMIN);
        await page.click("#login button");

        // Steady: nothing has ended for a second (the slots hold hung calls).
        let ended = -1;
        for (;;) {
          const now = sim.stats().ended;
          if (now === ended && gateway.status().upstreams[0]!.concurrency.inFlight > 0) break;
          ended = now;
          await new Promise((r) => setTimeout(r, 1000));
        }
        const text = await (
          await world.fetch(`${server.origin}/metrics`, {
            headers: { authorization: `Bearer ${ADMIN}` },
          })
        ).text();
        const inFlight = metric(text, "salvo_gateway_in_flight", 'upstream="openai"');
        const requests = metric(text, "salvo_gateway_requests_received_total", 'upstream="openai"');
        expect(inFlight).toBeGreaterThan(0);
        expect(requests).toBe(120);

        const tile = (field: string) => `[data-upstream="openai"] [data-field="${field}"] .value`;
        const shows = (selector: string, want: number) =>
          page.waitForFunction(
            `document.querySelector(${JSON.stringify(selector)})?.textContent === ${JSON.stringify(String(want))}`,
            undefined,
            { timeout: 10_000 },
          );
        await shows(tile("inFlight"), inFlight);
        await shows(tile("requests"), requests);
        expect(await page.textContent(tile("inFlight"))).toBe(String(inFlight));
        expect(await page.textContent(tile("requests"))).toBe(String(requests));
        expect(await page.textContent(tile("queued"))).toBe(
          String(metric(text, "salvo_gateway_queued", 'upstream="openai"')),
        );
        // The tenant row agrees too, and the charts drew (uPlot's canvases).
        expect(await page.textContent('[data-tenant="claims"] [data-field="requests"]')).toBe("30");
        expect(await page.textContent('[data-tenant="bulk"] [data-field="requests"]')).toBe("90");
        expect(
          await page.locator('[data-upstream="openai"] canvas').count(),
        ).toBeGreaterThanOrEqual(2);
        expect(errors).toEqual([]);

        const artifacts = join(ROOT, "test-artifacts");
        await mkdir(artifacts, { recursive: true });
        const shot = join(artifacts, "gateway-dashboard.png");
        await page.screenshot({ path: shot, fullPage: true });
        if (process.env.SALVO_UPDATE_SCREENSHOT === "1")
          await copyFile(shot, join(ROOT, "docs", "gateway-dashboard.png"));
      } finally {
        await browser.close();
        await rm(profile, { recursive: true, force: true });
        await server.close(500);
        await Promise.all(calls);
      }
    },
    90_000,
  );
});
