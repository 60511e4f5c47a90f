import { appendFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditClosedError, AuditRecordError } from "../errors.ts";
import { openChainLog } from "./chain-log.ts";
import { recomputeHash } from "./chain-record.ts";
import { verifyLog } from "./verify-log.ts";

let dir: string;
let path: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-chain-"));
  path = join(dir, "log.jsonl");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lines = async () =>
  (await readFile(path, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));

describe("ChainLog", () => {
  it("starts with a genesis, chains seq and prev, and returns {seq, hash} per append", async () => {
    const log = openChainLog(path, { env: {} });
    const a = await log.append("decision", { x: 1 });
    const b = await log.append("decision", { x: 2 });
    await log.close();
    const [genesis, ra, rb, checkpoint] = await lines();
    expect(genesis).toMatchObject({
      type: "genesis",
      seq: 0,
      schema: "salvo-log/v1",
      writer: log.writerId,
    });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    expect(ra).toMatchObject({ seq: 1, prev: genesis.hash, hash: a.hash, x: 1 });
    expect(rb).toMatchObject({ seq: 2, prev: a.hash, hash: b.hash });
    expect(recomputeHash(rb)).toBe(b.hash);
    expect(checkpoint).toMatchObject({ type: "checkpoint", seq: 3, size: 3, head: b.hash });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(`${path}.checkpoints`)).mode & 0o777).toBe(0o600);
  });

  it("refuses reserved fields, non-JSON values and appends after close", async () => {
    const log = openChainLog(path, { env: {}, checkpointFile: false });
    await expect(log.append("decision", { seq: 9 })).rejects.toBeInstanceOf(AuditRecordError);
    await expect(log.append("decision", { x: Number.NaN })).rejects.toBeInstanceOf(
      AuditRecordError,
    );
    await expect(log.append("checkpoint", {})).rejects.toBeInstanceOf(AuditRecordError);
    await log.close();
    await expect(log.append("decision", {})).rejects.toBeInstanceOf(AuditClosedError);
  });

  it("is one instance per real path in a process", async () => {
    const a = openChainLog(path, { env: {}, checkpointFile: false });
    const b = openChainLog(join(dir, ".", "log.jsonl"), { env: {}, checkpointFile: false });
    expect(b).toBe(a);
    await b.close();
    await a.append("decision", { still: "open" });
    await a.close();
    expect((await lines()).filter((r) => r.type === "genesis")).toHaveLength(1);
  });

  it("heals a torn tail on open: keeps the bytes, closes the line, names it in the new genesis", async () => {
    const first = openChainLog(path, { env: {}, checkpointFile: false });
    await first.append("decision", { n: 1 });
    await first.close();
    const torn = '{"type":"decision","writer":"dead","seq":7,"pre';
    await appendFile(path, torn);
    expect((await verifyLog(path)).status).toBe("torn_tail");
    const second = openChainLog(path, { env: {}, checkpointFile: false });
    await second.append("decision", { n: 2 });
    await second.close();
    const text = await readFile(path, "utf8");
    expect(text).toContain(`${torn}\n`); // the evidence stays
    const genesis = text
      .split("\n")
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return undefined;
        }
      })
      .filter((r) => r?.type === "genesis")[1];
    expect(genesis.recovered).toMatchObject({ length: torn.length });
    const report = await verifyLog(path);
    expect(report).toMatchObject({ status: "intact", healed: 1, segments: 2 });
  });

  it("writes checkpoints every N records, HMAC-signed with the key from the environment", async () => {
    const log = openChainLog(path, {
      checkpointEvery: 5,
      env: { SALVO_AUDIT_HMAC_KEY: "k".repeat(32) },
    });
    for (let i = 0; i < 12; i++) await log.append("decision", { i });
    await log.close();
    const external = (await readFile(`${path}.checkpoints`, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(external.map((c) => c.size)).toEqual([5, 11, 15]);
    expect(external.every((c) => /^[0-9a-f]{64}$/.test(c.mac) && c.key_id.length === 16)).toBe(
      true,
    );
    const report = await verifyLog(path, {
      checkpointsFile: `${path}.checkpoints`,
      hmacKey: "k".repeat(32),
    });
    expect(report).toMatchObject({
      status: "intact",
      checkpoints: { inline: 3, external: 3, macs_verified: 6 },
    });
    expect((await verifyLog(path, { hmacKey: "wrong" })).first_bad?.reason).toBe(
      "CHECKPOINT_MAC_INVALID",
    );
  });
});
