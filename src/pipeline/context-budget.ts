// Context assembly under a token budget: a downstream prompt's context is built from upstream
// results in priority sections (e.g. top insights, then structured data, then raw text) and
// trimmed, with the real tokenizer (o200k), to at most `budget` tokens. Sections go in priority
// order; the first one that does not fit is cut to what is left and every later one is dropped,
// so a less important section never displaces a more important one. The report says what was
// kept, cut and dropped.
import { countTokens } from "../providers/token-estimate.ts";

/** One part of a context. */
export type ContextSection = {
  /** Names the section in the report, e.g. `stageA/ach insights`. */
  name: string;
  /** Lower comes first and is trimmed last; ties keep their order. */
  priority: number;
  /** The text, headers included (sections are joined with a blank line). */
  text: string;
};

/** What happened to one section. */
export type SectionReport = {
  name: string;
  priority: number;
  /** The section's own tokens. */
  tokens: number;
  /** Tokens of it that made it into the context. */
  keptTokens: number;
  kept: "whole" | "truncated" | "dropped";
};

/** What a context assembly kept and dropped. */
export type ContextReport = {
  /** The budget, tokens; null for none. */
  budget: number | null;
  /** Tokens of the assembled context. */
  tokens: number;
  /** Every section, in the order they were considered. */
  sections: SectionReport[];
  /** Names of the sections left out entirely. */
  dropped: string[];
  /** Names of the sections cut short. */
  truncated: string[];
};

const SEPARATOR = "\n\n";

/** The longest prefix of `text` with at most `tokens` tokens (never splitting a surrogate pair). */
export function truncateToTokens(text: string, tokens: number): string {
  if (tokens <= 0) return "";
  if (countTokens(text) <= tokens) return text;
  // Token counts of prefixes grow with their length: binary search on the length.
  let low = 0;
  let high = text.length;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (countTokens(safePrefix(text, middle)) <= tokens) low = middle;
    else high = middle - 1;
  }
  return safePrefix(text, low);
}

function safePrefix(text: string, length: number): string {
  const code = text.charCodeAt(length - 1);
  return code >= 0xd800 && code <= 0xdbff ? text.slice(0, length - 1) : text.slice(0, length);
}

/**
 * Assembles `sections` into one text of at most `budget` tokens (no limit when undefined or
 * Infinity), and reports what it kept. Empty sections add nothing.
 */
export function assembleContext(
  sections: readonly ContextSection[],
  budget: number | undefined,
): { text: string; report: ContextReport } {
  const limit = budget ?? Number.POSITIVE_INFINITY;
  const ordered = sections
    .map((section, index) => ({ section, index }))
    .sort((a, b) => a.section.priority - b.section.priority || a.index - b.index)
    .map(({ section }) => section);
  const reports: SectionReport[] = [];
  const parts: Array<{ text: string; report: SectionReport }> = [];
  let used = 0;
  let full = false;
  for (const section of ordered) {
    const tokens = countTokens(section.text);
    const report: SectionReport = {
      name: section.name,
      priority: section.priority,
      tokens,
      keptTokens: 0,
      kept: "dropped",
    };
    reports.push(report);
    if (section.text === "") {
      report.kept = "whole";
      continue;
    }
    if (full) continue;
    const separator = parts.length > 0 ? countTokens(SEPARATOR) : 0;
    if (used + separator + tokens <= limit) {
      parts.push({ text: section.text, report });
      report.kept = "whole";
      report.keptTokens = tokens;
      used += separator + tokens;
      continue;
    }
    full = true;
    const cut = truncateToTokens(section.text, limit - used - separator);
    if (cut === "") continue;
    parts.push({ text: cut, report });
    report.kept = "truncated";
    report.keptTokens = countTokens(cut);
    used += separator + report.keptTokens;
  }
  // Tokens merge across a join, so the sum of the parts is only an estimate: cut the last part
  // until the joined text itself is within the budget.
  let text = parts.map((p) => p.text).join(SEPARATOR);
  let tokens = countTokens(text);
  while (tokens > limit && parts.length > 0) {
    const last = parts[parts.length - 1]!;
    // At least one token fewer than the part has: every round makes progress.
    const target = countTokens(last.text) - (tokens - limit);
    const cut = target > 0 ? truncateToTokens(last.text, target) : "";
    if (cut === "") {
      parts.pop();
      last.report.kept = "dropped";
      last.report.keptTokens = 0;
    } else {
      last.text = cut;
      last.report.kept = "truncated";
      last.report.keptTokens = countTokens(cut);
    }
    text = parts.map((p) => p.text).join(SEPARATOR);
    tokens = countTokens(text);
  }
  return {
    text,
    report: {
      budget: Number.isFinite(limit) ? limit : null,
      tokens,
      sections: reports,
      dropped: reports.filter((r) => r.kept === "dropped").map((r) => r.name),
      truncated: reports.filter((r) => r.kept === "truncated").map((r) => r.name),
    },
  };
}
