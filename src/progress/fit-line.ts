// Fitting a status line to the terminal's width: the least important fields are shortened, then
// dropped, first; the counts are never dropped. Every glyph Salvo draws is one column wide, so a
// string's length is its width.

/** One part of a status line. */
export type Field = {
  /** The text at full length. */
  text: string;
  /** A shorter text, used before the field is dropped. */
  short?: string | undefined;
  /** Higher is kept longer; `Infinity` is never dropped or shortened (the counts). */
  priority: number;
  /**
   * When the field is shortened, on the same scale: a field whose full text matters less than
   * its gist is shortened before less important fields are dropped. @default priority
   */
  shortPriority?: number | undefined;
};

/** A field that is never dropped. */
export const REQUIRED = Number.POSITIVE_INFINITY;

export const SEPARATOR = " | ";

/**
 * The fields' texts as they fit in `width` columns, in their order (see `fitLine`): shortening
 * and dropping steps are taken in order of priority, least important first (a field is
 * shortened before it is dropped), until the line fits.
 */
export function fitFields(
  fields: readonly Field[],
  width: number,
  separator = SEPARATOR,
): string[] {
  const texts: Array<string | undefined> = fields.map((f) => f.text);
  const length = () => {
    let n = 0;
    let count = 0;
    for (const t of texts) {
      if (t === undefined) continue;
      n += t.length;
      count++;
    }
    return n + Math.max(0, count - 1) * separator.length;
  };
  type Step = { index: number; priority: number; drop: boolean };
  const steps: Step[] = [];
  fields.forEach((field, index) => {
    if (field.priority === REQUIRED) return;
    if (field.short !== undefined && field.short.length < field.text.length)
      steps.push({ index, priority: field.shortPriority ?? field.priority, drop: false });
    steps.push({ index, priority: field.priority, drop: true });
  });
  // Least important first; a shortening before a drop at the same priority; then later fields.
  steps.sort(
    (a, b) => a.priority - b.priority || Number(a.drop) - Number(b.drop) || b.index - a.index,
  );
  for (const step of steps) {
    if (length() <= width) break;
    texts[step.index] = step.drop ? undefined : fields[step.index]!.short;
  }
  return texts.filter((t): t is string => t !== undefined);
}

/**
 * The fields joined, fitted to `width` columns: shortened, then dropped, least important first;
 * if the required fields alone are too long, the line is cut with an ellipsis.
 */
export function fitLine(fields: readonly Field[], width: number, separator = SEPARATOR): string {
  return cut(fitFields(fields, width, separator).join(separator), width);
}

/** `text` cut to `width` columns, ending in `…` when it was cut. */
export function cut(text: string, width: number): string {
  if (width <= 0) return "";
  if (text.length <= width) return text;
  return `${text.slice(0, width - 1)}…`;
}
