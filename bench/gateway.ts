// The gateway's cost per request: 1,000 concurrent client connections, each sending requests one
// after another, first straight to the simulator, then through the gateway to the same
// simulator. The difference of the two latency distributions (p50, p99) is what the gateway
// adds; the gateway's memory (resident set, sampled) is reported too. The simulator and the
// gateway run as processes of their own, the load from this one, so the gateway's memory is
// its own and the client does not share its event loop.
//
// Run: `npm run bench:gateway` (= `node bench/gateway.ts`), or with `-- --quick`.
// Options: --connections N (1000), --requests N per connection (6), --latency-ms N (2000),
// --repetitions N (3). Writes bench/results/gateway.json. Target: under 1 ms added at p50.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { createHistogram, type RecordableHistogram } from "node:perf_hooks";
import { parseArgs } from "node:util";

const SELF = new URL(import.meta.url).pathname;
const RESULTS = new URL("./results/gateway.json", import.meta.url).pathname;

const { values } = parseArgs({
  options: {
    role: { type: "string" },
    upstream: { type: "string" },
    connections: { type: "string" },
    requests: { type: "string" },
    "latency-ms": { type: "string" },
    repetitions: { type: "string" },
    quick: { type: "boolean" },
  },
});

/** Child: the simulator, unlimited slots, a fixed latency. Prints its base URL. */
async function runSimulator(latencyMs: number): Promise<void> {
  const { startSimulator } = await import("../src/sim/index.ts");
  const sim = await startSimulator({ latency: { ttftMs: latencyMs }, output: { tokens: 8 } });
  process.stdout.write(`${sim.baseUrl}\n`);
  process.on("SIGTERM", () => void sim.close().then(() => process.exit(0)));
}

/** Child: the gateway over `upstream`, with room for every connection (no queueing). */
async function runGateway(upstream: string): Promise<void> {
  const { createGateway, listen } = await import("../src/gateway/index.ts");
  const gateway = createGateway({
    upstreams: [
      {
        provider: "openai",
        baseUrl: upstream,
        apiKey: "sk-bench-not-a-real-key",
        concurrency: 100_000,
        maxQueued: 100_000,
      },
    ],
    processMetrics: false,
  });
  // As `salvo serve` runs it.
  const server = await listen(gateway, { port: 0, overrideGlobalObjects: true });
  process.stdout.write(`${server.baseUrl}\n`);
  process.on("SIGTERM", () => void server.close(1000).then(() => process.exit(0)));
  if (process.env.GW_CPU)
    process.on("SIGUSR2", () => {
      const cpu = process.cpuUsage();
      process.stderr.write(
        `gateway cpu user ${cpu.user / 1000} ms system ${cpu.system / 1000} ms\n`,
      );
    });
}

function startChild(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d;
      if (out.includes("\n")) resolve({ child, url: out.trim() });
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`child ${args.join(" ")} exited ${code}`)));
  });
}

/** CPU time a process has used, ms (Linux /proc: user + system). */
function cpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    // Fields 14 and 15 of stat (utime, stime) in clock ticks (100 a second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** Resident set size of a process, bytes (Linux /proc). */
function rss(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

type Phase = {
  latency: RecordableHistogram;
  failures: number;
  wallMs: number;
};

/**
 * `connections` workers, each sending `requests` requests one after another. Their starts are
 * spread over `spreadMs` (one upstream latency), so the connections are all open at once in a
 * steady state rather than a single thundering burst.
 */
async function load(
  baseUrl: string,
  connections: number,
  requests: number,
  spreadMs: number,
): Promise<Phase> {
  const url = new URL(`${baseUrl}/chat/completions`);
  const agent = new Agent({ keepAlive: true, maxSockets: connections + 16 });
  const latency = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  let failures = 0;
  const post = (content: string) =>
    new Promise<void>((resolve) => {
      const body = JSON.stringify({
        model: "sim-gpt",
        max_tokens: 8,
        messages: [{ role: "user", content }],
      });
      const started = performance.now();
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200)
              latency.record(Math.max(1, Math.round((performance.now() - started) * 1000)));
            else failures++;
            resolve();
          });
        },
      );
      req.on("error", () => {
        failures++;
        resolve();
      });
      req.end(body);
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      await new Promise((resolve) => setTimeout(resolve, (c * spreadMs) / connections));
      for (let i = 0; i < requests; i++) await post(`connection ${c} request ${i}`);
    }),
  );
  const wallMs = performance.now() - t0;
  agent.destroy();
  return { latency, failures, wallMs };
}

const ms = (us: number) => Math.round(us) / 1000;

async function runBench(): Promise<void> {
  const quick = values.quick === true;
  const connections = Number(values.connections ?? 1000);
  const requests = Number(values.requests ?? (quick ? 3 : 6));
  const latencyMs = Number(values["latency-ms"] ?? 2000);
  const repetitions = Number(values.repetitions ?? (quick ? 1 : 3));
  const sim = await startChild(["--role", "sim", "--latency-ms", String(latencyMs)]);
  const gateway = await startChild(["--role", "gateway", "--upstream", sim.url]);
  const memory = { peakRss: 0, idleRss: rss(gateway.child.pid!) ?? 0 };
  const sampler = setInterval(() => {
    const now = rss(gateway.child.pid!);
    if (now !== undefined && now > memory.peakRss) memory.peakRss = now;
  }, 100);
  try {
    // Warm up both paths (connections, JIT) before measuring.
    await load(sim.url, 200, 2, 200);
    await load(gateway.url, 200, 2, 200);
    const runs: Array<{ direct: Phase; gateway: Phase; cpuMsPerRequest: number }> = [];
    for (let r = 0; r < repetitions; r++) {
      const direct = await load(sim.url, connections, requests, latencyMs);
      const cpuBefore = cpuMs(gateway.child.pid!) ?? 0;
      const through = await load(gateway.url, connections, requests, latencyMs);
      const cpuMsPerRequest =
        ((cpuMs(gateway.child.pid!) ?? 0) - cpuBefore) / Math.max(1, through.latency.count);
      runs.push({ direct, gateway: through, cpuMsPerRequest });
      const p = (h: RecordableHistogram, q: number) => ms(h.percentile(q));
      process.stderr.write(
        `run ${r + 1}/${repetitions}: direct p50 ${p(direct.latency, 50)} ms p99 ${p(direct.latency, 99)} ms; ` +
          `gateway p50 ${p(through.latency, 50)} ms p99 ${p(through.latency, 99)} ms; ` +
          `failures ${direct.failures}/${through.failures}\n`,
      );
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const stat = (pick: (run: (typeof runs)[number]) => number) => median(runs.map(pick));
    const result = {
      measuredAt: new Date().toISOString(),
      machine: `${cpus()[0]?.model.trim() ?? "?"} (${cpus().length} cores), Node ${process.version}`,
      connections,
      requestsPerConnection: requests,
      upstreamLatencyMs: latencyMs,
      repetitions,
      direct: {
        p50Ms: stat((r) => ms(r.direct.latency.percentile(50))),
        p99Ms: stat((r) => ms(r.direct.latency.percentile(99))),
        requestsPerSecond: Math.round(
          stat((r) => (r.direct.latency.count / r.direct.wallMs) * 1000),
        ),
      },
      gateway: {
        p50Ms: stat((r) => ms(r.gateway.latency.percentile(50))),
        p99Ms: stat((r) => ms(r.gateway.latency.percentile(99))),
        requestsPerSecond: Math.round(
          stat((r) => (r.gateway.latency.count / r.gateway.wallMs) * 1000),
        ),
      },
      addedMs: {
        p50: stat((r) => ms(r.gateway.latency.percentile(50) - r.direct.latency.percentile(50))),
        p99: stat((r) => ms(r.gateway.latency.percentile(99) - r.direct.latency.percentile(99))),
      },
      failures: runs.reduce((n, r) => n + r.direct.failures + r.gateway.failures, 0),
      gatewayCpuMsPerRequest: Math.round(stat((r) => r.cpuMsPerRequest) * 1000) / 1000,
      loadAverage: loadavg().map((l) => Math.round(l * 10) / 10),
      gatewayMemory: {
        idleRssMiB: Math.round(memory.idleRss / 1048576),
        peakRssMiB: Math.round(memory.peakRss / 1048576),
      },
      target: "under 1 ms added at p50",
    };
    const met = result.addedMs.p50 < 1;
    writeFileSync(RESULTS, `${JSON.stringify({ ...result, targetMet: met }, null, 2)}\n`);
    process.stdout.write(
      [
        `Gateway bench: ${connections} concurrent connections x ${requests} requests, upstream latency ${latencyMs} ms, median of ${repetitions}`,
        `  ${result.machine}`,
        "",
        "| path | p50 | p99 | requests/s |",
        "|---|---:|---:|---:|",
        `| direct to the simulator | ${result.direct.p50Ms} ms | ${result.direct.p99Ms} ms | ${result.direct.requestsPerSecond} |`,
        `| through the gateway | ${result.gateway.p50Ms} ms | ${result.gateway.p99Ms} ms | ${result.gateway.requestsPerSecond} |`,
        `| added by the gateway | ${result.addedMs.p50} ms | ${result.addedMs.p99} ms | |`,
        "",
        `gateway CPU per request: ${result.gatewayCpuMsPerRequest} ms (user + system); memory ${result.gatewayMemory.idleRssMiB} MiB idle, ${result.gatewayMemory.peakRssMiB} MiB peak (RSS); failures ${result.failures}`,
        `machine load average during the run: ${result.loadAverage.join(", ")} (on ${cpus().length} cores: other work shares them)`,
        `target (under 1 ms added at p50): ${met ? "met" : "NOT met"}`,
        `written to ${RESULTS}`,
        "",
      ].join("\n"),
    );
  } finally {
    clearInterval(sampler);
    gateway.child.kill("SIGTERM");
    sim.child.kill("SIGTERM");
  }
}

if (values.role === "sim") await runSimulator(Number(values["latency-ms"] ?? 1000));
else if (values.role === "gateway") await runGateway(values.upstream!);
else await runBench();
