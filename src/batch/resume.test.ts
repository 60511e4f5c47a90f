import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JournalHeader } from "./journal.ts";
import { prepareResume } from "./resume.ts";

function header(sha = "a"): JournalHeader {
  return {
    salvo_journal: 1,
    input: { path: "in.jsonl", bytes: 100, sha256: sha.repeat(64) },
    output: "out.jsonl",
    options_sha256: "0".repeat(64),
    created_at: new Date().toISOString(),
  };
}

function out(index: number, error: unknown = null): string {
  return JSON.stringify({
    id: `batch_req_${index}`,
    custom_id: `c${index}`,
    response: null,
    error,
    line: index + 1,
  });
}

function rec(index: number): string {
  return `{"i":${index},"line":${out(index)}}`;
}

async function files(output: string | undefined, journal: string | undefined) {
  const dir = await mkdtemp(join(tmpdir(), "salvo-resume-"));
  const paths = { output: join(dir, "out.jsonl"), journal: join(dir, "out.jsonl.journal") };
  if (output !== undefined) await writeFile(paths.output, output);
  if (journal !== undefined) await writeFile(paths.journal, journal);
  return paths;
}

const headerLine = `${JSON.stringify(header())}\n`;

describe("prepareResume", () => {
  it("starts empty when there is nothing", async () => {
    const paths = await files(undefined, undefined);
    const state = await prepareResume({ ...paths, header: header(), total: 5 });
    expect(state).toMatchObject({ doneInOutput: 0, journalExists: false });
    expect(state.journaled.size).toBe(0);
  });

  it("counts complete output lines, takes journal records past them, and cuts torn tails off both", async () => {
    const paths = await files(
      `${out(0)}\n${out(1, { code: "SALVO_RATE_LIMITED" })}\n${out(2, { code: "SALVO_INPUT_INVALID" })}\n{"id":"batch_req_3","cus`,
      `${headerLine}${rec(1)}\n${rec(4)}\n${rec(3)}\n{"i":5,"li`,
    );
    const state = await prepareResume({ ...paths, header: header(), total: 6 });
    expect(state.doneInOutput).toBe(3);
    expect(state.outputIds).toEqual(["c0", "c1", "c2"]);
    expect(state.outputLines).toEqual([1, 2, 3]);
    expect(state.outputCounts).toEqual({ succeeded: 1, failed: 1, invalid: 1 });
    expect([...state.journaled.keys()].sort()).toEqual([3, 4]);
    expect(state.journaled.get(4)).toBe(out(4)); // the exact text, back from the embedded JSON
    expect(state.journalExists).toBe(true);
    expect(state.truncatedBytes).toEqual({
      output: '{"id":"batch_req_3","cus'.length,
      journal: '{"i":5,"li'.length,
    });
    expect(await readFile(paths.output, "utf8")).toBe(
      `${out(0)}\n${out(1, { code: "SALVO_RATE_LIMITED" })}\n${out(2, { code: "SALVO_INPUT_INVALID" })}\n`,
    );
    expect((await readFile(paths.journal, "utf8")).endsWith(`${rec(3)}\n`)).toBe(true);
  });

  it("cuts an unparsable last line even when it ends with a newline (a power-loss tail)", async () => {
    const paths = await files(
      `${out(0)}\n\u0000\u0000\u0000\n`,
      `${headerLine}${rec(0)}\n\u0000\u0000\n`,
    );
    const state = await prepareResume({ ...paths, header: header(), total: 3 });
    expect(state.doneInOutput).toBe(1);
    expect(await readFile(paths.output, "utf8")).toBe(`${out(0)}\n`);
    expect(await readFile(paths.journal, "utf8")).toBe(`${headerLine}${rec(0)}\n`);
  });

  it("refuses a journal written for another input or other options, and changes nothing", async () => {
    const journal = `${headerLine}${rec(0)}\n`;
    const paths = await files(`${out(0)}\n{"torn`, journal);
    const other = header("f");
    await expect(prepareResume({ ...paths, header: other, total: 3 })).rejects.toMatchObject({
      code: "SALVO_RESUME_REFUSED",
      message: expect.stringMatching(
        /out\.jsonl\.journal: it was written for input in\.jsonl \(100 bytes, sha256 aaaaaaaaaaaa\).*sha256 ffffffffffff.*--fresh/,
      ),
    });
    await expect(
      prepareResume({
        ...paths,
        header: { ...header(), options_sha256: "9".repeat(64) },
        total: 3,
      }),
    ).rejects.toMatchObject({ code: "SALVO_RESUME_REFUSED" });
    expect(await readFile(paths.output, "utf8")).toBe(`${out(0)}\n{"torn`);
    expect(await readFile(paths.journal, "utf8")).toBe(journal);
  });

  it("refuses a corrupt line in the middle, an out-of-order output, and an output longer than the input", async () => {
    const middle = await files(`${out(0)}\nnot json\n${out(2)}\n`, undefined);
    await expect(prepareResume({ ...middle, header: header(), total: 3 })).rejects.toThrow(
      /line 2 is not a valid record/,
    );
    const order = await files(`${out(1)}\n${out(0)}\n`, undefined);
    await expect(prepareResume({ ...order, header: header(), total: 3 })).rejects.toThrow(
      /not in input order/,
    );
    const long = await files(`${out(0)}\n${out(1)}\n`, undefined);
    await expect(prepareResume({ ...long, header: header(), total: 1 })).rejects.toThrow(
      /has 2 lines but the input has only 1/,
    );
    const past = await files(undefined, `${headerLine}${rec(7)}\n`);
    await expect(prepareResume({ ...past, header: header(), total: 3 })).rejects.toThrow(
      /records item 7/,
    );
  });

  it("refuses, without cutting it, an output with a bad tail and no journal (not a run in progress)", async () => {
    const foreign = "some notes\nnot ours";
    const paths = await files(foreign, undefined);
    await expect(prepareResume({ ...paths, header: header(), total: 3 })).rejects.toThrow(
      /no journal and its line 1 is not a complete Salvo output line/,
    );
    expect(await readFile(paths.output, "utf8")).toBe(foreign);
    const torn = await files(`${out(0)}\n{"id"`, undefined);
    await expect(prepareResume({ ...torn, header: header(), total: 3 })).rejects.toThrow(
      /line 2 is not/,
    );
    const whole = await files(`${out(0)}\n`, undefined);
    expect((await prepareResume({ ...whole, header: header(), total: 3 })).doneInOutput).toBe(1);
  });

  it("drops a journal killed before its header was whole", async () => {
    const paths = await files(undefined, '{"salvo_jour');
    const state = await prepareResume({ ...paths, header: header(), total: 3 });
    expect(state.journalExists).toBe(false);
    expect(existsSync(paths.journal)).toBe(false);
  });

  it("fresh deletes both files", async () => {
    const paths = await files(`${out(0)}\n`, `${JSON.stringify(header("z"))}\n`);
    const state = await prepareResume({ ...paths, header: header(), total: 3, fresh: true });
    expect(state.doneInOutput).toBe(0);
    expect(existsSync(paths.output) || existsSync(paths.journal)).toBe(false);
  });
});

describe("prepareResume: items a budget stopped", () => {
  const over = { code: "SALVO_BUDGET_EXCEEDED", message: "over budget" };

  it("cuts the output at the first not-attempted line, after moving the answers behind it to the journal", async () => {
    // A complete run (no journal) whose items 2 and 4 were refused by the budget.
    const output = `${out(0)}\n${out(1)}\n${out(2, over)}\n${out(3)}\n${out(4, over)}\n${out(5)}\n`;
    const paths = await files(output, undefined);
    const state = await prepareResume({ ...paths, header: header(), total: 6 });
    expect(state).toMatchObject({ doneInOutput: 2, rerun: 2, journalExists: true });
    expect([...state.journaled.keys()].sort()).toEqual([3, 5]);
    expect(state.journaled.get(3)).toBe(out(3));
    expect(await readFile(paths.output, "utf8")).toBe(`${out(0)}\n${out(1)}\n`);
    // The moved answers are in the journal (durably) before the output lost them.
    const journal = (await readFile(paths.journal, "utf8")).trim().split("\n");
    expect(JSON.parse(journal[0]!).salvo_journal).toBe(1);
    expect(journal.slice(1).sort()).toEqual([rec(3), rec(5)]);

    // Done again (a crash right after, or a second resume): the same state, nothing lost.
    const again = await prepareResume({ ...paths, header: header(), total: 6 });
    expect(again).toMatchObject({ doneInOutput: 2, rerun: 0 });
    expect([...again.journaled.keys()].sort()).toEqual([3, 5]);
  });

  it("a journaled refusal is not an answer: the item runs again", async () => {
    const paths = await files(`${out(0)}\n`, `${headerLine}{"i":1,"line":${out(1, over)}}\n`);
    const state = await prepareResume({ ...paths, header: header(), total: 2 });
    expect(state.doneInOutput).toBe(1);
    expect(state.journaled.has(1)).toBe(false);
  });

  it("readOnly (a dry run) finds the same state and changes no file", async () => {
    const output = `${out(0)}\n${out(1, over)}\n${out(2)}\n{"torn`;
    const journal = `${headerLine}${rec(2)}\n{"i":`;
    const paths = await files(output, journal);
    const state = await prepareResume({ ...paths, header: header(), total: 4, readOnly: true });
    expect(state).toMatchObject({ doneInOutput: 1, rerun: 1 });
    expect([...state.journaled.keys()]).toEqual([2]);
    expect(await readFile(paths.output, "utf8")).toBe(output);
    expect(await readFile(paths.journal, "utf8")).toBe(journal);
    await prepareResume({ ...paths, header: header(), total: 4, fresh: true, readOnly: true });
    expect(existsSync(paths.output)).toBe(true);
  });
});

describe("prepareResume: what to run again, and which journals resume", () => {
  it("a version-2 journal resumes over another input (its lines are checked one by one); a version-1 journal needs the same input", async () => {
    const v2 = { ...header(), salvo_journal: 2 as const };
    const paths = await files(`${out(0)}\n`, `${JSON.stringify(v2)}\n${rec(2)}\n`);
    const grown = { ...v2, input: { ...v2.input, bytes: 200, sha256: "b".repeat(64) } };
    const state = await prepareResume({ ...paths, header: grown, total: 4, readOnly: true });
    expect([...state.journaled.keys()]).toEqual([2]);
    await expect(
      prepareResume({ ...paths, header: { ...grown, options_sha256: "1".repeat(64) }, total: 4 }),
    ).rejects.toThrow(/it was written for/);
    const old = await files(`${out(0)}\n`, `${headerLine}${rec(2)}\n`);
    await expect(
      prepareResume({ ...old, header: { ...header("b"), salvo_journal: 2 }, total: 4 }),
    ).rejects.toThrow(/it was written for/);
  });

  it("redo: the output is cut at the first line to run again, lines after it kept in the journal, and the newest journal record of an index wins", async () => {
    const failed = { code: "SALVO_TIMEOUT", message: "slow" };
    const paths = await files(
      `${out(0)}\n${out(1, failed)}\n${out(2)}\n${out(3, failed)}\n`,
      // Item 4 failed in an earlier run, then was answered by a later one.
      `${headerLine}{"i":4,"line":${out(4, failed)}}\n${rec(4)}\n{"i":5,"line":${out(5, failed)}}\n`,
    );
    const redo = (_i: number, line: unknown) =>
      (line as { error: { code: string } | null }).error === null
        ? undefined
        : { reason: "transient" as const, code: "SALVO_TIMEOUT" };
    const state = await prepareResume({ ...paths, header: header(), total: 6, redo });
    expect(state.doneInOutput).toBe(1);
    expect([...state.journaled.keys()].sort()).toEqual([2, 4]);
    expect([...state.redo.keys()].sort()).toEqual([1, 3, 5]);
    expect(await readFile(paths.output, "utf8")).toBe(`${out(0)}\n`);
  });
});
