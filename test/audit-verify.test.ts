// `salvo verify` detects each tamper and names it: the reason, the record index and the line.
// Exit codes 0 / 1 / 2 / 3 through the CLI command.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openChainLog } from "../src/audit/chain-log.ts";
import { encodeRecord, GENESIS_PREV } from "../src/audit/chain-record.ts";
import { verifyLog } from "../src/audit/verify-log.ts";
import { verifyCommand } from "../src/cli/commands/verify.ts";
import type { CliIo } from "../src/cli/io.ts";

const KEY = "test-hmac-key-kept-off-the-log-host";
let dir: string;
let path: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-audit-verify-"));
  path = join(dir, "decisions.jsonl");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A log of genesis + 20 decisions, a checkpoint after every 10 records, HMAC-signed. */
async function writeLog(): Promise<string[]> {
  const log = openChainLog(path, { kind: "decisions", checkpointEvery: 10, hmacKey: KEY, env: {} });
  for (let i = 0; i < 20; i++)
    await log.append("decision", { claim: `C-${i}`, payout: String(100 * i) });
  await log.close();
  return (await readFile(path, "utf8")).slice(0, -1).split("\n");
}

const save = (lines: string[]) => writeFile(path, `${lines.join("\n")}\n`);
const verify = () => verifyLog(path, { checkpointsFile: `${path}.checkpoints`, hmacKey: KEY });

/** Rewrites a chain from its records' bodies: new seq/prev/hash everywhere (no key needed). */
function rehash(bodies: Array<Record<string, unknown>>): string[] {
  let prev = GENESIS_PREV;
  return bodies.map((body, seq) => {
    const { hash: _hash, ...rest } = body;
    const { line, hash } = encodeRecord({ ...rest, seq, prev });
    prev = hash;
    return line.slice(0, -1);
  });
}

function cliIo(env: Record<string, string | undefined> = {}): CliIo & { out: string } {
  const io = {
    out: "",
    stdout: { write: (text: string) => (io.out += text) },
    stderr: { write: () => true },
    env,
    isTTY: false,
    signal: new AbortController().signal,
    exitCode: undefined as number | undefined,
  };
  return io;
}

const cliRun = (args: string[], env: Record<string, string | undefined> = {}) => cli(args, env);
async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const io = cliIo(env);
  await verifyCommand(io).parseAsync(args, { from: "user" });
  return { code: io.exitCode, out: io.out };
}

describe("verify detects tampering", () => {
  it("an untouched log is intact, with every checkpoint's MAC verified", async () => {
    const lines = await writeLog();
    const report = await verify();
    expect(report.status).toBe("intact");
    expect(report.records).toBe(lines.length); // 1 + 20 + 2 inline checkpoints + final = 24
    expect(report.records).toBe(24);
    expect(report.head).toBe(JSON.parse(lines.at(-1)!).hash);
    expect(report.checkpoints).toEqual({
      file: `${path}.checkpoints`,
      inline: 3,
      external: 3,
      macs_verified: 6,
      macs_unverified: 0,
    });
  });

  it("a field edited: RECORD_HASH_MISMATCH at that record", async () => {
    const lines = await writeLog();
    lines[5] = lines[5]!.replace('"payout":"400"', '"payout":"900"');
    await save(lines);
    const report = await verify();
    expect(report.status).toBe("tampered");
    expect(report.first_bad).toMatchObject({ reason: "RECORD_HASH_MISMATCH", index: 5, line: 6 });
  });

  it("a record deleted: SEQ_GAP at the record after it", async () => {
    const lines = await writeLog();
    lines.splice(7, 1);
    await save(lines);
    expect((await verify()).first_bad).toMatchObject({
      reason: "SEQ_GAP",
      index: 7,
      line: 8,
      expected: 7,
      actual: 8,
    });
  });

  it("two records swapped: SEQ_GAP at the first of them", async () => {
    const lines = await writeLog();
    [lines[3], lines[4]] = [lines[4]!, lines[3]!];
    await save(lines);
    expect((await verify()).first_bad).toMatchObject({
      reason: "SEQ_GAP",
      index: 3,
      line: 4,
      expected: 3,
      actual: 4,
    });
  });

  it("a record replaced by another valid-looking one: PREV_HASH_MISMATCH", async () => {
    const lines = await writeLog();
    const record = JSON.parse(lines[6]!) as Record<string, unknown>;
    const { hash: _hash, ...body } = record;
    lines[6] = encodeRecord({ ...body, prev: "f".repeat(64) }).line.slice(0, -1);
    await save(lines);
    expect((await verify()).first_bad).toMatchObject({
      reason: "PREV_HASH_MISMATCH",
      index: 6,
      line: 7,
    });
  });

  it("the tail truncated: a valid shorter chain, caught by the external checkpoint (TRUNCATED)", async () => {
    const lines = await writeLog();
    await save(lines.slice(0, 15));
    // Without the checkpoint file the shorter chain is indistinguishable from a shorter log...
    expect((await verifyLog(path, { hmacKey: KEY, checkpointsFile: false })).status).toBe("intact");
    // ...with it, the truncation is found.
    const report = await verify();
    expect(report.status).toBe("tampered");
    expect(report.first_bad).toMatchObject({
      reason: "TRUNCATED",
      index: 15,
      line: 16,
      expected: 23,
      actual: 15,
    });
  });

  it("the whole chain rewritten and rehashed: caught by the HMAC checkpoints", async () => {
    const lines = await writeLog();
    const bodies = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    bodies[2] = { ...bodies[2], payout: "999999" };
    // The forger fixes the inline checkpoints' size/head too, but cannot compute their MACs.
    let prev = GENESIS_PREV;
    const forged = bodies.map((body, seq) => {
      const { hash: _hash, ...rest } = body;
      const fields = rest.type === "checkpoint" ? { ...rest, size: seq, head: prev } : rest;
      const { line, hash } = encodeRecord({ ...fields, seq, prev });
      prev = hash;
      return line.slice(0, -1);
    });
    await save(forged);
    // The chain alone is consistent: only a key or an external checkpoint tells.
    expect((await verifyLog(path, { checkpointsFile: false })).status).toBe("intact");
    expect(
      (await verifyLog(path, { hmacKey: KEY, checkpointsFile: false })).first_bad,
    ).toMatchObject({
      reason: "CHECKPOINT_MAC_INVALID",
      index: 10,
      line: 11,
    });
    // The forger also strips the inline checkpoints: the external checkpoint file still tells,
    // at the first checkpointed size (10 records: record 9) after the edit.
    await save(rehash(bodies.filter((body) => body.type !== "checkpoint")));
    expect(
      (await verifyLog(path, { checkpointsFile: `${path}.checkpoints` })).first_bad,
    ).toMatchObject({
      reason: "CHECKPOINT_MISMATCH",
      index: 9,
      line: 10,
    });
  });

  it("a line that is not JSON: PARSE_ERROR; a last line without newline: TORN_TAIL", async () => {
    const lines = await writeLog();
    await save([...lines.slice(0, 4), "{not json", ...lines.slice(4)]);
    expect((await verify()).first_bad).toMatchObject({ reason: "PARSE_ERROR", index: 4, line: 5 });
    await writeFile(path, `${lines.join("\n")}\n{"type":"decision","writ`);
    const report = await verify();
    expect(report.status).toBe("torn_tail");
    expect(report.first_bad).toMatchObject({ reason: "TORN_TAIL", line: 25 });
  });
});

describe("verify finds deleted records by default (it read no checkpoints unless told)", () => {
  /** Three writers' segments, one after the other, 402 records each (genesis, 400, checkpoint). */
  async function threeSegments(): Promise<{ lines: string[]; writers: string[] }> {
    for (let w = 0; w < 3; w++) {
      const log = openChainLog(path, { kind: "calls", hmacKey: KEY, env: {} });
      for (let i = 0; i < 400; i++) await log.append("llm_call", { w, i });
      await log.close();
    }
    const lines = (await readFile(path, "utf8")).slice(0, -1).split("\n");
    const writers = [...new Set(lines.map((l) => (JSON.parse(l) as { writer: string }).writer))];
    return { lines, writers };
  }
  const writerOf = (line: string) => (JSON.parse(line) as { writer: string }).writer;

  it("every line of one writer's segment deleted: TRUNCATED, also in a copy of the log", async () => {
    const { lines, writers } = await threeSegments();
    expect(lines).toHaveLength(3 * 402);
    const gone = lines.filter((l) => writerOf(l) !== writers[1]);
    await save(gone);
    const report = await verifyLog(path);
    expect(report.checkpoints.file).toBe(`${path}.checkpoints`);
    expect(report.first_bad).toMatchObject({
      reason: "TRUNCATED",
      writer: writers[1],
      expected: 401, // the final checkpoint covers the 401 records before it
      actual: 0,
    });
    // A copy under another name, verified against the original's checkpoints: the checkpoints
    // of its other segments name the log the deleted one belonged to.
    const copy = join(dir, "tampered.jsonl");
    await writeFile(copy, `${gone.join("\n")}\n`);
    const copied = await verifyLog(copy, { checkpointsFile: `${path}.checkpoints` });
    expect(copied.first_bad).toMatchObject({ reason: "TRUNCATED", writer: writers[1] });
  });

  it("a segment's last 10 records, its final HMAC'd checkpoint among them: TRUNCATED with only the key set", async () => {
    const { lines, writers } = await threeSegments();
    const middle = lines.filter((l) => writerOf(l) === writers[1]);
    const cut = new Set(middle.slice(-10));
    await save(lines.filter((l) => !cut.has(l)));
    const report = await verifyLog(path, { hmacKey: KEY });
    expect(report.first_bad).toMatchObject({
      reason: "TRUNCATED",
      writer: writers[1],
      expected: 401,
      actual: 392,
    });
    const cli = await cliRun([path], { SALVO_AUDIT_HMAC_KEY: KEY });
    expect(cli.code).toBe(1);
    expect(cli.out).toContain("first bad: TRUNCATED");
    // --no-checkpoints says what it cannot see.
    const blind = await cliRun([path, "--no-checkpoints"], { SALVO_AUDIT_HMAC_KEY: KEY });
    expect(blind.code).toBe(0);
    expect(blind.out).toContain("external checkpoints: none read");
  });
});

describe("salvo verify (CLI)", () => {
  it("exit 0 intact, 1 tampered, 2 torn tail only, 3 I/O error; --json", async () => {
    const lines = await writeLog();
    const env = { SALVO_AUDIT_HMAC_KEY: KEY };
    const ok = await cli([path, "--checkpoints", `${path}.checkpoints`], env);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("INTACT");
    expect(ok.out).toContain("MACs 6 verified");

    await writeFile(path, `${lines.join("\n")}\n{"torn`);
    const torn = await cli([path, "--json"], env);
    expect(torn.code).toBe(2);
    expect(JSON.parse(torn.out)).toMatchObject({
      status: "torn_tail",
      first_bad: { reason: "TORN_TAIL" },
    });

    await save(lines.slice(0, 15));
    const truncated = await cli([path, "--checkpoints", `${path}.checkpoints`], env);
    expect(truncated.code).toBe(1);
    expect(truncated.out).toContain("first bad: TRUNCATED at record 15, line 16");

    const missing = await cli([join(dir, "nope.jsonl"), "--json"]);
    expect(missing.code).toBe(3);
    expect(JSON.parse(missing.out)).toMatchObject({ status: "io_error" });
  });

  it("--help lists every option with its default", async () => {
    const io = cliIo();
    await expect(verifyCommand(io).parseAsync(["--help"], { from: "user" })).rejects.toThrow();
    for (const option of ["--checkpoints", "--hmac-key-env", "--json"])
      expect(io.out).toContain(option);
    expect(io.out.replace(/\s+/g, " ").match(/\(default: /g)?.length).toBe(4);
  });
});
