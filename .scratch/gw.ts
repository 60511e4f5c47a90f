import OpenAI, { toFile } from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { rm } from "node:fs/promises";
import { createGateway, listen } from "/work/wt/batchapi/src/gateway/index.ts";
import { startSimulator, expectedMarker } from "/work/wt/batchapi/src/sim/index.ts";
const sim = await startSimulator({ latency: { ttftMs: 5 } });
await rm("/tmp/bb/state", { recursive: true, force: true });
const gateway = createGateway({ upstreams: [{ provider: "openai", baseUrl: sim.baseUrl, apiKey: "sk-up-x", concurrency: 8 }, { provider: "anthropic", baseUrl: sim.origin, apiKey: "sk-up-y", concurrency: 8 }], stateDir: "/tmp/bb/state" });
const server = await listen(gateway, { port: 0 });
const client = new OpenAI({ baseURL: server.baseUrl, apiKey: "anything", maxRetries: 0 });
const N = 50;
const text = Array.from({ length: N }, (_, i) => JSON.stringify({ custom_id: `c-${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "gpt-4o-mini", max_tokens: 10, messages: [{ role: "user", content: `q ${i}` }] } })).join("\n");
const file = await client.files.create({ file: await toFile(Buffer.from(text), "in.jsonl"), purpose: "batch" });
console.log(file);
let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
console.log(batch.status, batch.id);
while (!["completed", "failed", "expired", "cancelled"].includes(batch.status)) { await new Promise(r => setTimeout(r, 100)); batch = await client.batches.retrieve(batch.id); }
console.log(batch);
const out = await (await client.files.content(batch.output_file_id!)).text();
const lines = out.trim().split("\n").map(l => JSON.parse(l));
console.log(lines.length, lines[0].custom_id, lines.every(l => l.response.body.choices[0].message.content.startsWith(expectedMarker([{role: "user", content: `q ${l.custom_id.slice(2)}`}]))));
const a = new Anthropic({ baseURL: server.origin, apiKey: "anything", maxRetries: 0 });
let mb = await a.messages.batches.create({ requests: Array.from({ length: 20 }, (_, i) => ({ custom_id: `m-${i}`, params: { model: "claude-haiku-4-5", max_tokens: 10, messages: [{ role: "user" as const, content: `a ${i}` }] } })) });
while (mb.processing_status !== "ended") { await new Promise(r => setTimeout(r, 100)); mb = await a.messages.batches.retrieve(mb.id); }
console.log(mb);
let n = 0; for await (const r of await a.messages.batches.results(mb.id)) { n++; if (n === 1) console.log(JSON.stringify(r).slice(0, 200)); }
console.log("results", n, sim.stats({timeline: false}).completions);
await server.close(); await sim.close();
