// Shared by the benchmark runners: the same prompt ids for both engines, and peak memory.

/** A fixed pseudo-random prompt of ordinary token ids (BOS first). */
export function benchPrompt(n: number): number[] {
  const ids = [2];
  let s = 12345;
  while (ids.length < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids.push(1000 + (s % 200000));
  }
  return ids;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
