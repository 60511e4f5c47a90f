import { mkdtemp, open, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { isJournalHeader, isJournalRecord, Journal, type JournalHeader } from "./journal.ts";

const header: JournalHeader = {
  salvo_journal: 1,
  input: { path: "in.jsonl", bytes: 10, sha256: "a".repeat(64) },
  output: "out.jsonl",
  options_sha256: "b".repeat(64),
  created_at: "2025-01-01T00:00:00.000Z",
};

async function tempPath(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), "salvo-journal-")), "out.jsonl.journal");
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Journal", () => {
  it("starts with the header, mode 0600, and appends one record per item with the line embedded as JSON", async () => {
    const path = await tempPath();
    const journal = await Journal.open(path, header);
    await journal.append(3, '{"id":"batch_req_3","error":null}');
    await Promise.all([journal.append(1, '{"a":1}'), journal.append(0, '{"b":"x\\ny"}')]);
    await journal.close();
    const lines = (await readFile(path, "utf8")).split("\n");
    expect(lines.pop()).toBe("");
    const [head, ...records] = lines.map((l) => JSON.parse(l) as unknown);
    expect(isJournalHeader(head) && head).toEqual(header);
    expect(records).toEqual([
      { i: 3, line: { id: "batch_req_3", error: null } },
      { i: 1, line: { a: 1 } },
      { i: 0, line: { b: "x\ny" } },
    ]);
    expect(records.every(isJournalRecord)).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // Never overwritten: creating it again fails.
    await expect(Journal.open(path, header)).rejects.toMatchObject({ code: "EEXIST" });
    // Reopened for append, it keeps what it had.
    const again = await Journal.open(path, undefined, { fsync: true });
    await again.append(9, "{}");
    await again.close();
    expect(
      (await readFile(path, "utf8")).endsWith('{"i":0,"line":{"b":"x\\ny"}}\n{"i":9,"line":{}}\n'),
    ).toBe(true);
  });

  it("batches the appends of one tick into one write, and append resolves after it", async () => {
    const path = await tempPath();
    const journal = await Journal.open(path, header);
    const probe = await open(path, "r");
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => unknown };
    await probe.close();
    const write = vi.spyOn(proto, "write");
    const appends = Array.from({ length: 50 }, (_, i) => journal.append(i, `{"n":${i}}`));
    await Promise.all(appends);
    expect(write).toHaveBeenCalledTimes(1);
    expect((await readFile(path, "utf8")).split("\n")).toHaveLength(52);
    await journal.close();
  });

  it("rejects every waiting and later append with a write error (ENOSPC)", async () => {
    const journal = await Journal.open("/dev/full", undefined);
    const a = journal.append(0, "{}");
    const b = journal.append(1, "{}");
    await expect(a).rejects.toMatchObject({ code: "ENOSPC" });
    await expect(b).rejects.toMatchObject({ code: "ENOSPC" });
    await expect(journal.append(2, "{}")).rejects.toMatchObject({ code: "ENOSPC" });
    await expect(journal.close()).rejects.toMatchObject({ code: "ENOSPC" });
  });
});
