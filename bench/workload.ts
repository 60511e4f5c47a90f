// The requests of a benchmark run, built the same way in every process: item i's prompt depends
// only on the scenario, i and (for a later stage) the previous stage's answers, so every contender
// sends the same bodies and the simulator gives every prompt the same answer length.

import { expectedMarker } from "../src/sim/index.ts";

/** The model name every request uses. */
export const MODEL = "sim-gpt";

export type ChatBody = {
  model: string;
  messages: Array<{ role: "user"; content: string }>;
  max_tokens: number;
};

export type BenchItem = {
  /** Position over all stages, from 0. */
  index: number;
  body: ChatBody;
  /** What the answer must start with (the simulator's marker of this prompt). */
  marker: string;
};

/** The tag the instrumented fetch reads back from a request body to know its item. */
export const ITEM_TAG = "[item ";

const FILLER = [" data", " value", " report", " table", " field", " claim", " line", " note"];

/** The user prompt of item `index`: a tag, the scenario, optional context, then filler words. */
export function promptText(
  scenarioId: string,
  index: number,
  promptTokens: number,
  context = "",
): string {
  let text = `${ITEM_TAG}${index}] ${scenarioId}.${context === "" ? "" : ` Context: ${context}.`}`;
  const words = Math.max(0, promptTokens - 12);
  for (let w = 0; w < words; w++) text += FILLER[(index + w) % FILLER.length];
  return text;
}

export function benchItem(
  scenarioId: string,
  index: number,
  promptTokens: number,
  maxTokens: number,
  context?: string,
): BenchItem {
  const messages = [
    { role: "user" as const, content: promptText(scenarioId, index, promptTokens, context) },
  ];
  return {
    index,
    body: { model: MODEL, messages, max_tokens: maxTokens },
    marker: expectedMarker(messages),
  };
}

/** The items of one stage, lazily: `offset` is the index of its first item. */
export function* stageItems(
  scenarioId: string,
  size: number,
  offset: number,
  promptTokens: number,
  maxTokens: number,
  context?: string,
): Generator<BenchItem> {
  for (let i = 0; i < size; i++)
    yield benchItem(scenarioId, offset + i, promptTokens, maxTokens, context);
}

/**
 * A later stage's context: the previous stage's answers (their first words), in item order, so
 * stage B cannot be built before all of stage A has ended. A failed item contributes `failed`.
 */
export function stageContext(answers: ReadonlyArray<string | undefined>): string {
  return answers.map((a) => (a === undefined ? "failed" : a.split(" ")[0])).join(" ");
}

/** The item index in a request body, from its tag; -1 when absent. */
export function itemIndexOf(body: string): number {
  const at = body.indexOf(ITEM_TAG);
  if (at < 0) return -1;
  return Number.parseInt(body.slice(at + ITEM_TAG.length, at + ITEM_TAG.length + 12), 10);
}
