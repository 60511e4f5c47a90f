// The pipeline's error classes, as src/errors.test.ts checks the others: a stable code, a name,
// a SalvoError, a message that says what, where and what to do, and the cause kept.
import { describe, expect, it } from "vitest";
import * as errors from "../src/errors.ts";

const cause = new Error("socket hang up");
const table: Array<[errors.SalvoError, string, string, RegExp]> = [
  [
    new errors.RunDirRefusedError("runs/a", "it was created for another input"),
    "RunDirRefusedError",
    "SALVO_RUN_DIR_REFUSED",
    /^cannot use run directory runs\/a: it was created for another input\. Rerun with --fresh/,
  ],
  [
    new errors.DependencyFailedError("b/x", "a/y", "SALVO_SERVER_ERROR"),
    "DependencyFailedError",
    "SALVO_DEPENDENCY_FAILED",
    /^b\/x was skipped: its input a\/y has no result \(SALVO_SERVER_ERROR\) and stage a skips/,
  ],
  [
    new errors.PipelineStoppedError("a/y", { cause }),
    "PipelineStoppedError",
    "SALVO_PIPELINE_STOPPED",
    /stopped because a\/y failed and its stage fails the run \(onFailure: fail\)/,
  ],
  [
    new errors.TaskFailedError("a/y", "parse", { cause }),
    "TaskFailedError",
    "SALVO_TASK_FAILED",
    /^a\/y: its parse threw: socket hang up$/,
  ],
];

describe("pipeline errors", () => {
  it.each(table)("%o has a stable code, a name and a message", (error, name, code, message) => {
    expect(error).toBeInstanceOf(errors.SalvoError);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it("keeps the cause, and the codes are not used by any other error", () => {
    expect(new errors.TaskFailedError("a/y", "run", { cause }).cause).toBe(cause);
    const mine = new Set(table.map(([error]) => error.constructor));
    const others: unknown[] = [];
    for (const value of Object.values(errors) as unknown[]) {
      if (typeof value !== "function" || mine.has(value)) continue;
      try {
        others.push(new (value as new () => errors.SalvoError)().code);
      } catch {
        // A class whose constructor needs its details: its code is in src/errors.test.ts's table.
      }
    }
    for (const [, , code] of table) expect(others).not.toContain(code);
  });
});
