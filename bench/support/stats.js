// Statistics of bench results.

/** The q-quantile (0..1) of an ascending array. */
function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Jain's fairness index of per-worker counts: 1 when all equal, 1/n when one took everything. */
function jain(counts) {
  const sum = counts.reduce((a, b) => a + b, 0);
  const squares = counts.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? NaN : (sum * sum) / (counts.length * squares);
}

/**
 * Analyses contended runs: `results[i].events` are [acquiredNs, releasingNs] pairs of worker i.
 * Returns hand-offs/s, cross-process hand-off latency (from the holder calling unlock to the
 * next holder in another process returning from lock), fairness, and overlap violations.
 */
function contended(results, seconds) {
  const grants = [];
  results.forEach((r, worker) => {
    for (let i = 0; i < r.events.length; i += 2)
      grants.push([r.events[i], r.events[i + 1], worker]);
  });
  grants.sort((a, b) => a[0] - b[0]);
  const latencies = [];
  let overlaps = 0;
  let sameProcess = 0;
  for (let i = 1; i < grants.length; i++) {
    const [acquired, , worker] = grants[i];
    const [, releasing, previous] = grants[i - 1];
    if (acquired < releasing) overlaps++;
    if (worker === previous) sameProcess++;
    else latencies.push((acquired - releasing) / 1e6);
  }
  latencies.sort((a, b) => a - b);
  const counts = results.map((r) => r.events.length / 2);
  return {
    perSecond: grants.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    min: Math.min(...counts),
    max: Math.max(...counts),
    jain: jain(counts),
    overlaps,
    sameProcessShare: grants.length > 1 ? sameProcess / (grants.length - 1) : NaN,
    sentPerSecond: results.reduce((a, r) => a + r.sent, 0) / seconds,
    total: results.reduce((a, r) => a + r.total, 0),
  };
}

module.exports = { quantile, jain, contended };
