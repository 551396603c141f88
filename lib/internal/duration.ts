const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A duration such as `7d`, `12h`, `30m`, `45s` or `500ms` in milliseconds, or null when
 * the text is not one (or is too large to store in microseconds).
 */
export function durationMs(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  const ms = match === null ? NaN : Math.round(Number(match[1]) * UNIT_MS[match[2]]);
  return Number.isSafeInteger(ms) && ms <= Number.MAX_SAFE_INTEGER / 1000 ? ms : null;
}
