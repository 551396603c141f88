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
 * Analyses contended runs. `results[i].events` are [acquiredNs, releasingNs, name] triples
 * of worker i (ns since the run's origin); `window` is [fromNs, untilNs]. Per name, grants
 * are put in order: a grant that begins before the previous one ended is an overlap (a
 * violation), a grant to another worker than the previous one is a hand-off, whose latency
 * runs from the holder calling unlock() to lock() returning in the other process.
 */
function contended(results, [from, until]) {
  const seconds = (until - from) / 1e9;
  const byName = new Map();
  const counts = results.map(() => 0);
  results.forEach((r, worker) => {
    for (let i = 0; i < r.events.length; i += 3) {
      const [acquired, releasing, name] = r.events.slice(i, i + 3);
      let grants = byName.get(name);
      if (!grants) byName.set(name, (grants = []));
      grants.push([acquired, releasing, worker]);
      if (acquired >= from && acquired < until) counts[worker]++;
    }
  });
  const latencies = [];
  let overlaps = 0;
  let sameProcess = 0;
  let inWindow = 0;
  for (const grants of byName.values()) {
    grants.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < grants.length; i++) {
      const [acquired, , worker] = grants[i];
      const [, releasing, previous] = grants[i - 1];
      if (acquired < releasing) overlaps++;
      if (acquired < from || acquired >= until) continue;
      inWindow++;
      if (worker === previous) sameProcess++;
      else latencies.push((acquired - releasing) / 1e6);
    }
  }
  latencies.sort((a, b) => a - b);
  const grants = counts.reduce((a, b) => a + b, 0);
  const share = inWindow > 0 ? sameProcess / inWindow : NaN;
  return {
    perSecond: grants / seconds,
    handOffsPerSecond: latencies.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    min: Math.min(...counts),
    max: Math.max(...counts),
    jain: jain(counts),
    overlaps,
    sameProcessShare: share,
    total: results.reduce((a, r) => a + r.total, 0),
  };
}

/**
 * After a hold phase: for each name the holder released at `releasedAt` (ns), how long
 * until another worker's lock() returned. Resolves { p50, max, missing } (ms).
 */
function afterHold(results, holderIndex) {
  const holder = results[holderIndex];
  const times = [];
  let missing = 0;
  for (const [name, releasedAt] of holder.holdReleases ?? []) {
    let first = Infinity;
    results.forEach((r, worker) => {
      if (worker === holderIndex) return;
      for (let i = 0; i < r.events.length; i += 3) {
        if (r.events[i + 2] === name && r.events[i] >= releasedAt) {
          first = Math.min(first, r.events[i]);
        }
      }
    });
    if (first === Infinity) missing++;
    else times.push((first - releasedAt) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), max: times.at(-1) ?? NaN, count: times.length, missing };
}

module.exports = { quantile, jain, contended, afterHold };
