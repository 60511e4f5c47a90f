// The run directory: what a run writes, what a rerun reuses, and what it refuses.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Scheduler } from "../core/scheduler.ts";
import { RunDirRefusedError } from "../errors.ts";
import { CustomProvider } from "../providers/custom-provider.ts";
import { Salvo } from "../salvo.ts";
import { writeFileAtomic } from "./atomic-write.ts";
import { definePipeline } from "./pipeline-definition.ts";
import { JOURNAL_FILE, METADATA_FILE, outputFileName, type RunMetadata } from "./run-dir.ts";
import { runPipeline } from "./run-pipeline.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "salvo-rundir-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Input = { claim: string; items: string[] };

/** A pipeline of function tasks that records every call; `failing` tasks throw. */
function pipeline(
  calls: string[],
  failing: ReadonlySet<string> = new Set(),
  onFailure: "skip" | "continue" = "skip",
) {
  const work = (task: string, value: unknown) => {
    calls.push(task);
    if (failing.has(task)) throw new Error(`${task} broke`);
    return value;
  };
  return definePipeline<Input>({
    name: "claims",
    version: 1,
    stages: [
      {
        name: "items",
        onFailure,
        run: ({ task, item }) => work(task, `judged ${item}`),
        tasks: (input) => input.items.map((item, i) => ({ key: `i${i}`, item })),
      },
      {
        name: "claim",
        after: ["items"],
        run: ({ task, deps, input }) =>
          work(task, `${input.claim}: ${deps.map((d) => d.value).join(", ")}`),
        tasks: [{ key: "decision" }],
      },
    ],
  });
}

const input: Input = { claim: "CLM-1", items: ["bumper", "radiator / coolant"] };

async function run(
  calls: string[],
  options: {
    failing?: Set<string>;
    input?: Input;
    fresh?: boolean;
    onFailure?: "skip" | "continue";
  } = {},
) {
  return runPipeline(pipeline(calls, options.failing, options.onFailure), {
    scheduler: new Scheduler({ concurrency: 4 }),
    input: options.input ?? input,
    runDir: dir,
    fresh: options.fresh,
  });
}

describe("the run directory", () => {
  it("holds metadata.json, one output file per task, the journal and report.json; a rerun reuses every task", async () => {
    const calls: string[] = [];
    const first = await run(calls);
    expect(first.status).toBe("succeeded");
    expect(calls.sort()).toEqual(["claim/decision", "items/i0", "items/i1"]);
    expect((await readdir(dir)).sort()).toEqual([
      JOURNAL_FILE,
      METADATA_FILE,
      "outputs",
      "report.html",
      "report.json",
    ]);
    const metadata = JSON.parse(await readFile(join(dir, METADATA_FILE), "utf8")) as RunMetadata;
    expect(metadata).toMatchObject({
      salvo_pipeline: 1,
      name: "claims",
      runs: 1,
      status: "succeeded",
    });
    expect(metadata.tasks).toMatchObject({ total: 3, succeeded: 3 });
    expect(metadata.stages).toEqual([
      { name: "items", tasks: 2, ended: 2 },
      { name: "claim", tasks: 1, ended: 1 },
    ]);
    const decision = JSON.parse(await readFile(join(dir, "outputs/claim/decision.json"), "utf8"));
    expect(decision.value).toBe("CLM-1: judged bumper, judged radiator / coolant");
    expect((await stat(join(dir, METADATA_FILE))).mode & 0o777).toBe(0o600);
    const report = JSON.parse(await readFile(join(dir, "report.json"), "utf8"));
    expect(report.perTask.map((t: { task: string }) => t.task)).toEqual([
      "items/i0",
      "items/i1",
      "claim/decision",
    ]);

    const again: string[] = [];
    const second = await run(again);
    expect(again).toEqual([]);
    expect(second.status).toBe("succeeded");
    expect(second.report.tasks.reused).toBe(3);
    expect(second.records.get("claim/decision")!.value).toBe(decision.value);
    const rerun = JSON.parse(await readFile(join(dir, METADATA_FILE), "utf8")) as RunMetadata;
    expect(rerun.runs).toBe(2);
  });

  it("a rerun runs only what did not succeed, and dependants of what did see the kept answers", async () => {
    const calls: string[] = [];
    const first = await run(calls, { failing: new Set(["items/i1"]) });
    expect(first.status).toBe("partial");
    expect(first.records.get("claim/decision")!.status).toBe("skipped");
    const journal = (await readFile(join(dir, JOURNAL_FILE), "utf8")).trim().split("\n");
    expect(journal.map((l) => JSON.parse(l).task)).toEqual(["items/i0"]);

    const again: string[] = [];
    const second = await run(again);
    expect(again.sort()).toEqual(["claim/decision", "items/i1"]);
    expect(second.status).toBe("succeeded");
    expect(second.records.get("items/i0")!.reused).toBe(true);
  });

  it("a task built on a partial input is not reused once its missing dependency has run", async () => {
    const calls: string[] = [];
    const first = await run(calls, { failing: new Set(["items/i1"]), onFailure: "continue" });
    const partial = first.records.get("claim/decision")!;
    expect(partial.status).toBe("succeeded");
    expect(partial.partial).toBe(true);

    const again: string[] = [];
    const second = await run(again, { onFailure: "continue" });
    expect(again.sort()).toEqual(["claim/decision", "items/i1"]);
    const decision = second.records.get("claim/decision")!;
    expect(decision.reused).toBe(false);
    expect(decision.value).toBe("CLM-1: judged bumper, judged radiator / coolant");
  });

  it("refuses a directory made for another input or definition, with the reason; --fresh starts over", async () => {
    await run([]);
    const other = { ...input, claim: "CLM-2" };
    const refused = run([], { input: other });
    await expect(refused).rejects.toBeInstanceOf(RunDirRefusedError);
    await expect(refused).rejects.toThrow(
      /created for an input with sha256 \w{12}, not \w{12} \(the input changed\)/,
    );
    const changed = definePipeline({ ...pipeline([]), version: 2 });
    await expect(
      runPipeline(changed, { scheduler: new Scheduler(), input, runDir: dir }),
    ).rejects.toThrow(/the definition changed/);
    const calls: string[] = [];
    const fresh = await run(calls, { input: other, fresh: true });
    expect(calls).toHaveLength(3);
    expect(fresh.records.get("claim/decision")!.value).toMatch(/^CLM-2/);
  });

  it("refuses a directory with a journal but no metadata.json, or a metadata.json that is not Salvo's", async () => {
    await writeFile(
      join(dir, JOURNAL_FILE),
      `${JSON.stringify({ task: "items/i0", stage: "items", key: "i0", status: "succeeded" })}\n`,
    );
    await expect(run([])).rejects.toThrow(/has a journal.jsonl but no metadata.json/);
    await rm(join(dir, JOURNAL_FILE));
    await writeFile(join(dir, METADATA_FILE), '{"name": "something else"}');
    await expect(run([])).rejects.toThrow(/metadata.json is not a Salvo pipeline's/);
  });

  it("resumes a first run killed between creating journal.jsonl and writing metadata.json (an empty journal, no metadata)", async () => {
    await writeFile(join(dir, JOURNAL_FILE), "");
    const calls: string[] = [];
    const result = await run(calls);
    expect(result.status).toBe("succeeded");
    expect(calls).toHaveLength(3);
  });

  it("leaves no temporary file of a killed run's atomic writes behind once a rerun completes", async () => {
    await run([]);
    // What a run killed between creating and renaming its temporary files leaves.
    const stageDir = join(dir, "outputs", "items");
    await writeFile(join(stageDir, ".p07.json.0123456789ab.tmp"), "");
    await writeFile(join(dir, `.${METADATA_FILE}.abcdef012345.tmp`), "{");
    await writeFile(join(stageDir, "notes.tmp"), "the user's"); // not Salvo's: kept
    await run([]);
    const files = [...(await readdir(dir)), ...(await readdir(stageDir))];
    expect(files.filter((f) => f.endsWith(".tmp"))).toEqual(["notes.tmp"]);
  });

  it("cuts a torn last journal line and reruns that task; refuses a journal corrupt in the middle", async () => {
    await run([]);
    const path = join(dir, JOURNAL_FILE);
    const lines = (await readFile(path, "utf8")).trim().split("\n");
    // The last record torn mid-write, as by a power loss.
    await writeFile(path, `${lines.slice(0, -1).join("\n")}\n${lines.at(-1)!.slice(0, 40)}`);
    const calls: string[] = [];
    await run(calls);
    expect(calls).toEqual([JSON.parse(lines.at(-1)!).task]);
    expect((await readFile(path, "utf8")).endsWith("}\n")).toBe(true);

    await writeFile(path, `${lines[0]}\nnot json\n${lines[1]}\n`);
    await expect(run([])).rejects.toThrow(/line 2 of its journal.jsonl is not a task record/);
  });

  it("names output files after task keys, with a hash for keys that are not plain names", () => {
    expect(outputFileName("i0")).toBe("i0.json");
    expect(outputFileName("radiator / coolant")).toMatch(/^radiator_coolant-[0-9a-f]{10}\.json$/);
    expect(outputFileName("..")).toMatch(/^\.\.-[0-9a-f]{10}\.json$/);
    expect(outputFileName("a/b")).not.toBe(outputFileName("a_b"));
  });
});

describe("writeFileAtomic", () => {
  it("replaces the whole file and leaves no temporary file behind", async () => {
    const path = join(dir, "metadata.json");
    await writeFileAtomic(path, "old\n");
    await writeFileAtomic(path, "new\n");
    expect(await readFile(path, "utf8")).toBe("new\n");
    expect(await readdir(dir)).toEqual(["metadata.json"]);
  });
});

describe("a task's answer is journaled while its call holds its slot", () => {
  it("at concurrency 1, each succeeded task (an LLM call, a function) is in the journal before the next one starts; parse runs once per answer", async () => {
    const journalAtStart: string[][] = [];
    const journaled = async () =>
      (await readFile(join(dir, JOURNAL_FILE), "utf8").catch(() => ""))
        .trim()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l).task as string);
    let parses = 0;
    const provider = new CustomProvider(async () => {
      journalAtStart.push(await journaled());
      return { body: { choices: [{ message: { content: "ok" }, finish_reason: "stop" }] } };
    });
    const salvo = new Salvo({ provider, concurrency: 1 });
    const definition = definePipeline<Input>({
      name: "keep",
      version: 1,
      stages: [
        {
          name: "ask",
          request: ({ item }) => ({
            path: "/chat/completions",
            body: { model: "m", messages: [{ role: "user", content: String(item) }] },
          }),
          parse: (text) => {
            parses++;
            return text.toUpperCase();
          },
          tasks: (i) => i.items.map((item, n) => ({ key: `a${n}`, item })),
        },
        {
          name: "work",
          run: async ({ task }) => {
            journalAtStart.push(await journaled());
            return task;
          },
          tasks: [{ key: "w0" }, { key: "w1" }],
        },
      ],
    });
    const result = await runPipeline(definition, {
      salvo,
      input: { claim: "c", items: ["x", "y", "z"] },
      runDir: dir,
      order: "fifo",
    });
    expect(result.status).toBe("succeeded");
    expect(parses).toBe(3);
    // Every start found every earlier success already journaled.
    expect(journalAtStart.map((seen) => seen.length)).toEqual([0, 1, 2, 3, 4]);
    expect(await journaled()).toHaveLength(5);
    await salvo.close();
  });
});
