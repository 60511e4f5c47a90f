// Durations as Go's time.Duration prints them, the format of OpenAI's `x-ratelimit-reset-*`
// headers: `0s`, `120ms`, `1.5s`, `6m0s`, `1h2m3s`.

/**
 * Formats a duration in milliseconds. Sub-millisecond remainders round up, so a positive wait
 * never prints as `0s`; seconds keep at most three decimals with trailing zeros dropped.
 */
export function formatGoDuration(ms: number): string {
  if (!(ms > 0)) return "0s";
  const total = Math.ceil(ms);
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1000);
  const frac = millis % 1000;
  const seconds =
    frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(3, "0").replace(/0+$/, "")}`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}
