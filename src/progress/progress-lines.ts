// The lines of the live display: the overall bar, then one line per group (a pipeline's stage,
// a scope), finished groups collapsed into one line and groups beyond the last line added up.
// Each line is fitted to the width: the counts stay, the rest gives way.
import type { RunSnapshot } from "../metrics/run-metrics.ts";
import { type Field, fitFields, fitLine, REQUIRED, SEPARATOR } from "./fit-line.ts";
import type { GroupSnapshot, GroupsView, GroupTotals } from "./progress-groups.ts";
import { doneOf, inFlightField, type StatusOptions, statusFields } from "./status-fields.ts";

const FULL = "█";
const EMPTY = "░";

/** A bar `width` columns wide, `fraction` (0..1) of it filled. */
export function bar(fraction: number, width: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const filled = Math.round(f * width);
  return FULL.repeat(filled) + EMPTY.repeat(width - filled);
}

/**
 * `fields` fitted to `width` with a bar in front, between `min` and `max` columns wide. The bar
 * gives way before any field of priority `keepAbove` or more would be dropped for it.
 */
function withBar(
  prefix: string,
  fraction: number,
  fields: readonly Field[],
  width: number,
  { min, max, keepAbove }: { min: number; max: number; keepAbove: number },
): string {
  const room = width - prefix.length;
  const without = fitFields(fields, room);
  const withIt = fitFields(fields, room - min - 1);
  const important = (texts: string[]) =>
    fields.filter(
      (f) => f.priority >= keepAbove && texts.some((t) => t === f.text || t === f.short),
    ).length;
  if (room - min - 1 < 0 || important(withIt) < important(without))
    return fitLine([{ text: prefix + without.join(SEPARATOR), priority: REQUIRED }], width);
  const text = withIt.join(SEPARATOR);
  const barWidth = Math.min(max, room - text.length - 1);
  return `${prefix}${bar(fraction, barWidth)} ${text}`.slice(0, width);
}

/** The overall line: a bar and the run's status, fitted to `width`. */
export function overallLine(s: RunSnapshot, width: number, options: StatusOptions = {}): string {
  const total = s.total ?? s.submitted;
  const fraction = total > 0 ? doneOf(s) / total : 0;
  return withBar("", fraction, statusFields(s, options), width, { min: 8, max: 30, keepAbove: 50 });
}

/** Items of a group that are done: answered, failed, skipped or done by an earlier run. */
function doneIn(g: GroupSnapshot | GroupTotals): number {
  return g.succeeded + g.failed + g.skipped + g.resumed;
}

function groupFields(g: GroupSnapshot): Field[] {
  const done = doneIn(g);
  const fields: Field[] = [
    // Undeclared (a scope): more items may still come while it runs.
    { text: `${done}/${g.total}${g.declared || g.finished ? "" : "+"}`, priority: REQUIRED },
    { text: `${g.failed} failed`, priority: REQUIRED },
  ];
  if (g.stopped > 0) fields.push({ text: `${g.stopped} stopped`, priority: REQUIRED });
  if (g.finished) {
    fields.push({ text: "done", priority: 90 });
  } else {
    if (g.inFlight > 0) fields.push(inFlightField(g.inFlight, Number.POSITIVE_INFINITY, 70));
    const waiting = g.total - done - g.stopped - g.inFlight;
    if (waiting > 0) fields.push({ text: `${waiting} waiting`, priority: 40 });
  }
  if (g.skipped > 0)
    fields.push({
      text: `${g.skipped} skipped or resumed`,
      short: `${g.skipped} skipped`,
      priority: 30,
    });
  if (g.rateLimited > 0) fields.push({ text: `429s ${g.rateLimited}`, priority: 60 });
  if (g.retries > 0) fields.push({ text: `retries ${g.retries}`, priority: 50 });
  return fields;
}

function totalsFields(t: GroupTotals): Field[] {
  const done = doneIn(t);
  const fields: Field[] = [
    { text: `${done}/${t.total}`, priority: REQUIRED },
    { text: `${t.failed} failed`, priority: REQUIRED },
  ];
  if (t.stopped > 0) fields.push({ text: `${t.stopped} stopped`, priority: REQUIRED });
  if (t.inFlight > 0) fields.push({ text: `in flight ${t.inFlight}`, priority: 70 });
  return fields;
}

/** `3 stages`, `1 stage`. */
function counted(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun.replace(/s$/, "") : noun}`;
}

/** The lines under the overall one for a view of the groups. */
export function groupLines(view: GroupsView, noun: string, width: number): string[] {
  const lines: string[] = [];
  if (view.done !== undefined) {
    const d = view.done;
    const names = d.names.length < d.groups ? `…, ${d.names.join(", ")}` : d.names.join(", ");
    lines.push(
      fitLine(
        [
          { text: `  done: ${counted(d.groups, noun)}`, priority: REQUIRED },
          ...totalsFields(d),
          { text: names, priority: 10 },
        ],
        width,
      ),
    );
  }
  const label = Math.min(24, Math.max(0, ...view.lines.map((g) => g.name.length)));
  for (const g of view.lines) {
    const name = g.name.length > label ? `${g.name.slice(0, label - 1)}…` : g.name.padEnd(label);
    const fraction = g.total > 0 ? doneIn(g) / g.total : 0;
    lines.push(
      withBar(`  ${name} `, fraction, groupFields(g), width, { min: 6, max: 20, keepAbove: 60 }),
    );
  }
  if (view.more !== undefined) {
    lines.push(
      fitLine(
        [
          {
            text: `  + ${view.more.groups} more ${view.more.groups === 1 ? noun.replace(/s$/, "") : noun}`,
            priority: REQUIRED,
          },
          ...totalsFields(view.more),
        ],
        width,
      ),
    );
  }
  return lines;
}
