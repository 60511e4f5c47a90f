// Model name patterns for routing and allow-lists: an exact name, or `*` for any run of
// characters (`gpt-4o*`, `claude-*-4-5`, `*`).

export type ModelMatcher = (model: string) => boolean;

/** A matcher for any of `patterns`; undefined or empty patterns match every model. */
export function modelMatcher(patterns: readonly string[] | undefined): ModelMatcher {
  if (patterns === undefined || patterns.length === 0 || patterns.includes("*")) return () => true;
  const exact = new Set(patterns.filter((p) => !p.includes("*")));
  const globs = patterns
    .filter((p) => p.includes("*"))
    .map(
      (p) =>
        new RegExp(
          `^${p
            .split("*")
            .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
            .join(".*")}$`,
        ),
    );
  return (model) => exact.has(model) || globs.some((glob) => glob.test(model));
}
