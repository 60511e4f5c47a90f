// Scenario files: the simulator's settings checked in as YAML or JSON (JSON is read as YAML, so
// both report the line of a bad field).

import { readFile } from "node:fs/promises";
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ConfigError } from "../errors.ts";
import { type SimConfigInput, validateSimConfig } from "./sim-config.ts";

/**
 * Reads and validates a scenario file. Throws `ConfigError` naming the file (and line), the field,
 * what was expected and what was given; a file that cannot be read or parsed is a `ConfigError`
 * too.
 */
export async function loadScenario(path: string): Promise<SimConfigInput> {
  return parseScenario(await readScenarioFile(path), path);
}

/** A scenario file's text; one that cannot be read is a `ConfigError` naming it. */
export async function readScenarioFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      { field: "scenario", expected: "a readable YAML or JSON file", got: path, where: path },
      { cause: error },
    );
  }
}

/** Parses and validates scenario text; `where` names it in errors. */
export function parseScenario(text: string, where: string): SimConfigInput {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = lines.linePos(syntax.pos[0]).line;
    throw new ConfigError({
      field: "scenario",
      expected: "valid YAML or JSON",
      got: syntax.message.split("\n")[0],
      where: `${where}:${line}`,
    });
  }
  const value: unknown = doc.toJS() ?? {};
  return validateSimConfig(value, {
    where,
    lineOf: (path) => {
      // The line of the deepest key on the path that exists in the file.
      let node: unknown = doc.contents;
      let line: number | undefined;
      for (const key of path) {
        if (isMap(node)) {
          const pair = node.items.find(
            (p) => isScalar(p.key) && String(p.key.value) === String(key),
          );
          if (!pair) break;
          if (isNode(pair.key) && pair.key.range) line = lines.linePos(pair.key.range[0]).line;
          node = pair.value;
        } else if (isSeq(node)) {
          node = node.items[Number(key)];
          if (isNode(node) && node.range) line = lines.linePos(node.range[0]).line;
        } else break;
      }
      return line;
    },
  });
}
